package httpapi

import (
	"errors"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/gofiber/fiber/v2"

	"credvault/internal/credvault"
)

// statusOf is the one place where a domain error code becomes an HTTP status.
var statusOf = map[string]int{
	credvault.EINVALID:      http.StatusBadRequest,
	credvault.EUNAUTHORIZED: http.StatusUnauthorized,
	credvault.EFORBIDDEN:    http.StatusForbidden,
	credvault.ENOTFOUND:     http.StatusNotFound,
	credvault.ECONFLICT:     http.StatusConflict,
	credvault.ERATELIMITED:  http.StatusTooManyRequests,
	credvault.EUNAVAILABLE:  http.StatusServiceUnavailable,
	credvault.EINTERNAL:     http.StatusInternalServerError,
}

// statusOfReason refines the status for reasons that are more specific
// than their code: an upstream failing is a gateway problem, not credvault
// being unavailable.
var statusOfReason = map[string]int{
	"upstream_unreachable":        http.StatusBadGateway,
	"upstream_response_too_large": http.StatusBadGateway,
	"upstream_encoding":           http.StatusBadGateway,
	"upstream_timeout":            http.StatusGatewayTimeout,
}

// retryAfterUnavailable is the Retry-After (seconds) of a 503: about how
// long a PostgreSQL, Vault or Redis blip, or a database failover, takes.
const retryAfterUnavailable = "1"

// codeOf names the JSON error code of a status Fiber produced by itself
// (unknown route, body too large, ...), outside any handler.
var codeOf = map[int]string{
	http.StatusBadRequest:            "invalid_request",
	http.StatusNotFound:              "not_found",
	http.StatusMethodNotAllowed:      "method_not_allowed",
	http.StatusRequestEntityTooLarge: "body_too_large",
	http.StatusRequestTimeout:        "request_timeout",
	http.StatusUnsupportedMediaType:  "unsupported_media_type",
	http.StatusRequestURITooLong:     "uri_too_long",

	http.StatusRequestHeaderFieldsTooLarge: "request_header_fields_too_large",
}

// statusOfHeadCode gives the status of each code the framing guard
// (framing.go) answers before fasthttp reads a request.
var statusOfHeadCode = map[string]int{
	"invalid_framing":                 http.StatusBadRequest,
	"invalid_request_head":            http.StatusBadRequest,
	"invalid_host":                    http.StatusBadRequest,
	"uri_too_long":                    http.StatusRequestURITooLong,
	"request_header_fields_too_large": http.StatusRequestHeaderFieldsTooLarge,
	"unsupported_transfer_coding":     http.StatusNotImplemented,
	"method_not_implemented":          http.StatusNotImplemented,
	"http_version_not_supported":      http.StatusHTTPVersionNotSupported,
}

// errorBody is the JSON shape of every error the API returns.
type errorBody struct {
	Error     errorDetail `json:"error"`
	RequestID string      `json:"request_id"`
}

type errorDetail struct {
	Code    string `json:"code"`
	Message string `json:"message"`
	Details any    `json:"details,omitempty"`
}

// apiCode is the snake_case code a client sees for a domain error: the
// error's Reason when it has one, else a name derived from its code.
func apiCode(err error) string {
	if r := credvault.ErrorReason(err); r != "" {
		return r
	}
	switch c := credvault.ErrorCode(err); c {
	case credvault.EINVALID:
		return "invalid_request"
	default:
		return c
	}
}

// errorHandler is Fiber's one error handler: handlers just return errors.
// Internal errors are logged with their cause; the client sees only the
// caller-safe message, never err.Error().
func errorHandler(log *slog.Logger, refusals *refusalLog) fiber.ErrorHandler {
	return func(c *fiber.Ctx, err error) error {
		var (
			status int
			body   errorBody
		)
		var fe *fiber.Error
		if errors.As(err, &fe) {
			status = fe.Code
			code, ok := codeOf[status]
			if !ok {
				code = snakeStatusText(status)
			}
			body.Error = errorDetail{Code: code, Message: fiberMessage(fe)}
		} else {
			status = statusOf[credvault.ErrorCode(err)]
			if st, ok := statusOfReason[credvault.ErrorReason(err)]; ok {
				status = st
			}
			if status == 0 {
				status = http.StatusInternalServerError
			}
			body.Error = errorDetail{Code: apiCode(err), Message: credvault.ErrorMessage(err), Details: credvault.ErrorDetails(err)}
		}
		body.RequestID = requestID(c)
		if ra := credvault.ErrorRetryAfter(err); ra > 0 {
			c.Set(fiber.HeaderRetryAfter, strconv.Itoa(int((ra+time.Second-1)/time.Second)))
		} else if status == http.StatusServiceUnavailable && len(c.Response().Header.Peek(fiber.HeaderRetryAfter)) == 0 {
			// A dependency is down (or this instance follows a database
			// failover): the same request may succeed in a moment.
			c.Set(fiber.HeaderRetryAfter, retryAfterUnavailable)
		}
		if status == http.StatusUnauthorized {
			c.Set(fiber.HeaderWWWAuthenticate, wwwAuthenticate(body.Error.Code, body.Error.Message))
		}
		switch {
		case status >= 500:
			log.Error("request failed", "request_id", body.RequestID, "route", routeOf(c), "status", status, "error", err.Error())
		case isRefusal(status, body.Error.Code):
			refusals.record(c, status, body.Error.Code)
		default:
			log.Debug("request refused", "request_id", body.RequestID, "route", routeOf(c), "status", status, "code", body.Error.Code)
		}
		c.Set(fiber.HeaderCacheControl, "no-store")
		return c.Status(status).JSON(body)
	}
}

// fiberMessage rewrites Fiber's own error texts into ones that say what to
// do, without echoing anything from the request.
func fiberMessage(fe *fiber.Error) string {
	switch fe.Code {
	case http.StatusNotFound:
		return "no such route; see api/openapi.yaml for the API"
	case http.StatusMethodNotAllowed:
		return "method not allowed on this route"
	case http.StatusRequestEntityTooLarge:
		return "request body is too large"
	}
	return fe.Message
}

// snakeStatusText is the snake_case of a status's reason phrase
// ("Request Header Fields Too Large" -> "request_header_fields_too_large"),
// the code of a status Fiber produced that codeOf does not name.
func snakeStatusText(status int) string {
	text := strings.ToLower(http.StatusText(status))
	if text == "" {
		return "http_" + strconv.Itoa(status)
	}
	return strings.NewReplacer(" ", "_", "-", "_", "'", "").Replace(text)
}
