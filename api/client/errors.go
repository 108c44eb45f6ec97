package client

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"time"
)

// APIError is credvault's answer to a call that failed: the HTTP status, the
// error code of the body (`{"error":{"code","message"},"request_id"}`,
// e.g. "unknown_api_key", "insufficient_scope", "rate_limited"), its
// message, the request id to quote to an operator, and Retry-After for a
// 429 or 503. A body that is not credvault's error shape (a proxy in
// between answered) leaves Code empty and Message holding the status text.
type APIError struct {
	Status     int
	Code       string
	Message    string
	RequestID  string
	RetryAfter time.Duration
}

// Error renders "<message> (<code>, HTTP <status>, request <id>)".
func (e *APIError) Error() string {
	s := e.Message
	if e.Code != "" {
		s += " (" + e.Code + ", HTTP " + strconv.Itoa(e.Status)
	} else {
		s += " (HTTP " + strconv.Itoa(e.Status)
	}
	if e.RequestID != "" {
		s += ", request " + e.RequestID
	}
	return s + ")"
}

// Is lets errors.Is match an *APIError against the class sentinels below by
// status: ErrUnauthorized (401), ErrForbidden (403), ErrNotFound (404),
// ErrConflict (409), ErrInvalid (400, 413, 422), ErrRateLimited (429),
// ErrUnavailable (502, 503, 504).
func (e *APIError) Is(target error) bool {
	c, ok := target.(errorClass)
	if !ok {
		return false
	}
	for _, s := range classStatuses[c] {
		if s == e.Status {
			return true
		}
	}
	return false
}

type errorClass string

func (c errorClass) Error() string { return string(c) }

// Classes of *APIError, for errors.Is.
var (
	ErrInvalid      error = errorClass("invalid request")
	ErrUnauthorized error = errorClass("unauthorized")
	ErrForbidden    error = errorClass("forbidden")
	ErrNotFound     error = errorClass("not found")
	ErrConflict     error = errorClass("conflict")
	ErrRateLimited  error = errorClass("rate limited")
	ErrUnavailable  error = errorClass("unavailable")
)

var classStatuses = map[errorClass][]int{
	ErrInvalid.(errorClass):      {400, 413, 422},
	ErrUnauthorized.(errorClass): {401},
	ErrForbidden.(errorClass):    {403},
	ErrNotFound.(errorClass):     {404},
	ErrConflict.(errorClass):     {409},
	ErrRateLimited.(errorClass):  {429},
	ErrUnavailable.(errorClass):  {502, 503, 504},
}

// Check returns nil for a 2xx response and an *APIError for any other,
// decoded from body (the generated ...WithResponse methods have read it
// into their Body field). Use it as
//
//	r, err := c.WhoamiWithResponse(ctx)
//	if err == nil { err = client.Check(r.HTTPResponse, r.Body) }
func Check(resp *http.Response, body []byte) error {
	if resp == nil {
		return errors.New("credvault: no response")
	}
	if resp.StatusCode >= 200 && resp.StatusCode < 300 {
		return nil
	}
	e := &APIError{Status: resp.StatusCode, Message: http.StatusText(resp.StatusCode)}
	var shape struct {
		Error struct {
			Code    string `json:"code"`
			Message string `json:"message"`
		} `json:"error"`
		RequestID string `json:"request_id"`
	}
	if json.Unmarshal(body, &shape) == nil && shape.Error.Code != "" {
		e.Code, e.Message, e.RequestID = shape.Error.Code, shape.Error.Message, shape.RequestID
	}
	if e.RequestID == "" {
		e.RequestID = resp.Header.Get("X-Request-Id")
	}
	if s, err := strconv.Atoi(resp.Header.Get("Retry-After")); err == nil && s > 0 {
		e.RetryAfter = time.Duration(s) * time.Second
	}
	return e
}

// CheckResponse is Check for a response whose body has not been read: it
// reads at most 1 MiB of it and closes it when the status is not 2xx, and
// leaves a 2xx response untouched for the caller.
func CheckResponse(resp *http.Response) error {
	if resp == nil || (resp.StatusCode >= 200 && resp.StatusCode < 300) {
		return Check(resp, nil)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return fmt.Errorf("credvault: reading the error body: %w", err)
	}
	return Check(resp, b)
}
