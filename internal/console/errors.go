package console

import (
	"errors"
	"html/template"
	"regexp"
	"strings"

	"github.com/gofiber/fiber/v2"

	"credvault/internal/credvault"
)

// errorPages give each domain error code the page's status (as the API's
// error handler does for JSON) and the title of the error page of a
// request that cannot show its own page (an unknown id, a section the
// role may not open): each says what happened; anything else is a failure
// on credvault's side, 500 "Something went wrong".
var errorPages = map[string]struct {
	status int
	title  string
}{
	credvault.EINVALID:      {fiber.StatusBadRequest, "Check the address"},
	credvault.EUNAUTHORIZED: {fiber.StatusUnauthorized, "Sign in again"},
	credvault.EFORBIDDEN:    {fiber.StatusForbidden, "Not allowed"},
	credvault.ENOTFOUND:     {fiber.StatusNotFound, "Not found"},
	credvault.ECONFLICT:     {fiber.StatusConflict, "Already changed"},
	credvault.ERATELIMITED:  {fiber.StatusTooManyRequests, "Too many attempts"},
	credvault.EUNAVAILABLE:  {fiber.StatusServiceUnavailable, "credvault is not ready"},
}

// statusOf maps a domain error code to the page's status.
func statusOf(err error) int {
	if p, ok := errorPages[credvault.ErrorCode(err)]; ok {
		return p.status
	}
	return fiber.StatusInternalServerError
}

// errorData is what the error page offers next: back to the section the
// request was in.
type errorData struct {
	Back, BackText string
}

// sections are the list pages, by view.Nav, for the error page's way back.
var sections = map[string][2]string{
	"credentials": {"/credentials", "Back to credentials"},
	"api-keys":    {"/api-keys", "Back to API keys"},
	"members":     {"/members", "Back to members"},
	"endpoints":   {"/endpoints", "Back to endpoints"},
	"audit":       {"/audit", "Back to the audit log"},
}

// fail renders the error page. Internal errors are logged and shown as a
// request id; a 4xx page says what was refused (the service's message)
// and links back to its section. Forms never end here for a refused
// input: they use inline.
func (c *Console) fail(ctx *fiber.Ctx, v *view, err error) error {
	status := statusOf(err)
	msg := credvault.ErrorMessage(err)
	var ce *credvault.Error
	if status == fiber.StatusInternalServerError || !errors.As(err, &ce) {
		c.log.Error("console: internal error", "request_id", c.cfg.RequestID(ctx), "error", err.Error())
		msg = "Something went wrong on our side (request " + c.cfg.RequestID(ctx) + "). Try again; if it persists, tell your admin."
	}
	v.Title, v.Error = "Something went wrong", msg
	if p, ok := errorPages[credvault.ErrorCode(err)]; ok {
		v.Title = p.title
	}
	d := errorData{Back: "/credentials", BackText: "Back to the console"}
	nav := v.Nav
	if nav == "" { // failed before the handler named its section: the path does
		nav = strings.SplitN(strings.TrimPrefix(ctx.Path(), "/"), "/", 2)[0]
		v.Nav = nav
	}
	if s, ok := sections[nav]; ok {
		d.Back, d.BackText = s[0], s[1]
	}
	v.Data = d
	return c.render(ctx, status, "error", v)
}

// inline shows a refused form again on the page it came from, with the
// service's message above it and the field it names (else field) marked
// aria-invalid with the message next to it: again re-renders that page
// with the given status. Every 4xx takes this path (bad input, a taken
// email, a role that may not, a rate limit); 5xx go to fail.
func (c *Console) inline(ctx *fiber.Ctx, v *view, err error, field string, again func(status int) error) error {
	status := statusOf(err)
	if status >= 500 || status == fiber.StatusUnauthorized {
		return c.fail(ctx, v, err)
	}
	v.Error = credvault.ErrorMessage(err)
	if v.Invalid = invalidField(err); v.Invalid == "" {
		v.Invalid = field
	}
	return again(status)
}

// fieldRe finds the field a service error names: `field "agent" must …`
// or `query parameter "environment" must …`.
var fieldRe = regexp.MustCompile(`^(?:field|query parameter) "([a-z_]+)"`)

// invalidField is the form field err names, or "".
func invalidField(err error) string {
	if m := fieldRe.FindStringSubmatch(credvault.ErrorMessage(err)); m != nil {
		return m[1]
	}
	return ""
}

// invalidAttr is the {{invalid $ "email"}} helper: on the field the
// error names, aria-invalid and a reference to the message under it
// (rendered by {{fielderror $ "email"}}), so that screen readers read the
// message with the field.
func invalidAttr(v *view, field string) template.HTMLAttr {
	if v == nil || v.Invalid == "" || v.Invalid != field {
		return ""
	}
	return template.HTMLAttr(`aria-invalid="true" aria-describedby="err-` + template.HTMLEscapeString(field) + `"`)
}

// fieldError is the {{fielderror $ "email"}} helper: the message, under
// the field it names.
func fieldError(v *view, field string) template.HTML {
	if v == nil || v.Invalid == "" || v.Invalid != field {
		return ""
	}
	return template.HTML(`<p class="field-error" id="err-` + template.HTMLEscapeString(field) + `">` + template.HTMLEscapeString(v.Error) + `</p>`)
}
