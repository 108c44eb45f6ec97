# credvault: build a static binary, run it as an unprivileged user.
FROM golang:1.26-bookworm AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
RUN CGO_ENABLED=0 go build -trimpath -ldflags="-s -w" -o /out/credvault ./cmd/credvault

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/credvault /usr/local/bin/credvault
EXPOSE 8080
USER nonroot:nonroot
ENTRYPOINT ["/usr/local/bin/credvault"]
CMD ["serve"]
