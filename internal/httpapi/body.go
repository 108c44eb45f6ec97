package httpapi

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"reflect"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/go-playground/validator/v10"
	"github.com/gofiber/fiber/v2"

	"credvault/internal/credvault"
)

// validate is the one shared validator; it names fields by their JSON tag
// so that messages speak the API's language.
var validate = newValidator()

func newValidator() *validator.Validate {
	v := validator.New(validator.WithRequiredStructEnabled())
	v.RegisterTagNameFunc(func(f reflect.StructField) string {
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		if name == "-" {
			return ""
		}
		return name
	})
	// printable_name: a human-readable name, agent, tag or description
	// holds no control or invisible formatting character
	// (credvault.HiddenRune).
	if err := v.RegisterValidation("printable_name", func(fl validator.FieldLevel) bool {
		_, bad := credvault.HiddenRune(fl.Field().String())
		return !bad
	}); err != nil {
		panic(err)
	}
	// Optional fields validate their value when they are present.
	v.RegisterCustomTypeFunc(func(f reflect.Value) any { return f.Interface().(optional[string]).V }, optional[string]{})
	v.RegisterCustomTypeFunc(func(f reflect.Value) any { return f.Interface().(optional[map[string]string]).V }, optional[map[string]string]{})
	return v
}

// decodeBody parses the JSON request body into dst, rejecting unknown
// fields, trailing data and wrong types, then validates dst. Every failure
// is EINVALID with a message that names the field.
func decodeBody(c *fiber.Ctx, dst any) error {
	body := c.Body()
	if len(bytes.TrimSpace(body)) == 0 {
		return credvault.Errorf(credvault.EINVALID, "request body is empty; send a JSON object")
	}
	if ct := string(c.Request().Header.ContentType()); ct != "" && !strings.HasPrefix(ct, fiber.MIMEApplicationJSON) {
		return credvault.Errorf(credvault.EINVALID, "Content-Type must be application/json")
	}
	if err := checkJSONText(body); err != nil {
		return err
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(dst); err != nil {
		return credvault.Errorf(credvault.EINVALID, "%s", jsonMessage(err, body, dst))
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return credvault.Errorf(credvault.EINVALID, "request body must hold a single JSON object")
	}
	return validateStruct(dst)
}

// checkJSONText refuses a body that is not valid UTF-8 (RFC 8259 section
// 8.1) or that escapes half of a surrogate pair ("\ud800" alone):
// encoding/json would silently store U+FFFD in place of either, so what
// was stored would differ from what was sent. Errors: EINVALID naming the
// byte offset.
func checkJSONText(body []byte) error {
	if !utf8.Valid(body) {
		at := 0
		for at < len(body) {
			r, size := utf8.DecodeRune(body[at:])
			if r == utf8.RuneError && size <= 1 {
				break
			}
			at += size
		}
		return credvault.Errorf(credvault.EINVALID, "request body is not valid UTF-8 (at byte %d); send JSON text in UTF-8", at)
	}
	for i := 0; i < len(body); i++ {
		if body[i] != '\\' || i+1 >= len(body) {
			continue
		}
		if body[i+1] != 'u' {
			i++ // a two-character escape such as \\ or \"
			continue
		}
		r, ok := hex4(body[i+2:])
		switch {
		case !ok:
		case r >= 0xd800 && r < 0xdc00:
			if lo, ok := hex4(body[min(i+8, len(body)):]); ok && i+7 < len(body) && body[i+6] == '\\' && body[i+7] == 'u' && lo >= 0xdc00 && lo < 0xe000 {
				i += 11
				continue
			}
			fallthrough
		case r >= 0xdc00 && r < 0xe000:
			return credvault.Errorf(credvault.EINVALID, "request body escapes half of a UTF-16 surrogate pair (at byte %d); send the character itself or both halves", i)
		}
		i += 5
	}
	return nil
}

// hex4 reads the four hex digits of a \u escape.
func hex4(b []byte) (rune, bool) {
	if len(b) < 4 {
		return 0, false
	}
	var r rune
	for _, c := range b[:4] {
		switch {
		case c >= '0' && c <= '9':
			r = r<<4 | rune(c-'0')
		case c >= 'a' && c <= 'f':
			r = r<<4 | rune(c-'a'+10)
		case c >= 'A' && c <= 'F':
			r = r<<4 | rune(c-'A'+10)
		default:
			return 0, false
		}
	}
	return r, true
}

// optional is a body field whose absence, null and value differ: Set
// when the field was present, Null when it was null.
type optional[T any] struct {
	Set, Null bool
	V         T
}

// UnmarshalJSON records that the field was present.
func (o *optional[T]) UnmarshalJSON(b []byte) error {
	o.Set = true
	if string(b) == "null" {
		o.Null = true
		return nil
	}
	return json.Unmarshal(b, &o.V)
}

func jsonMessage(err error, body []byte, dst any) string {
	var syn *json.SyntaxError
	var typ *json.UnmarshalTypeError
	var tpe *time.ParseError
	switch {
	case errors.As(err, &tpe):
		// encoding/json passes an Unmarshaler's error on without the field.
		return fmt.Sprintf("field %q must be an RFC 3339 date-time such as 2027-01-15T00:00:00Z (a date alone is ambiguous: give the time and zone)", failingField(body, reflect.TypeOf(dst)))
	case errors.As(err, &syn):
		return fmt.Sprintf("request body is not valid JSON (at byte %d)", syn.Offset)
	case errors.As(err, &typ):
		if typ.Field != "" {
			return fmt.Sprintf("field %q must be %s", typ.Field, jsonKind(typ.Type))
		}
		return fmt.Sprintf("request body must be %s", jsonKind(typ.Type))
	case errors.Is(err, io.ErrUnexpectedEOF):
		return "request body is truncated JSON"
	case strings.HasPrefix(err.Error(), "json: unknown field "):
		return fmt.Sprintf("unknown field %s", strings.TrimPrefix(err.Error(), "json: unknown field "))
	}
	return "request body is not valid JSON"
}

// failingField finds the JSON name (dotted for nested objects) of the first
// field of t whose value in body does not decode, for errors that
// encoding/json reports without one (those of an Unmarshaler such as
// time.Time). It returns "?" when it cannot tell.
func failingField(body []byte, t reflect.Type) string {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	var raw map[string]json.RawMessage
	if t.Kind() != reflect.Struct || json.Unmarshal(body, &raw) != nil {
		return "?"
	}
	byName := make(map[string]json.RawMessage, len(raw))
	for k, v := range raw { // encoding/json matches names case-insensitively
		byName[strings.ToLower(k)] = v
	}
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		if name == "" {
			name = f.Name
		}
		v, ok := byName[strings.ToLower(name)]
		if !ok || name == "-" {
			continue
		}
		if json.Unmarshal(v, reflect.New(f.Type).Interface()) == nil {
			continue
		}
		if inner := failingField(v, f.Type); inner != "?" {
			return name + "." + inner
		}
		return name
	}
	return "?"
}

func jsonKind(t reflect.Type) string {
	switch t.Kind() {
	case reflect.String:
		return "a string"
	case reflect.Bool:
		return "a boolean"
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return "an integer"
	case reflect.Float32, reflect.Float64:
		return "a number"
	case reflect.Slice, reflect.Array:
		return "an array"
	case reflect.Map, reflect.Struct:
		return "an object"
	}
	return "of type " + t.String()
}

// validateStruct runs the shared validator and turns its first failure
// into a message such as `field "name" is required`.
func validateStruct(v any) error {
	err := validate.Struct(v)
	if err == nil {
		return nil
	}
	var ves validator.ValidationErrors
	if !errors.As(err, &ves) || len(ves) == 0 {
		return credvault.Errorf(credvault.EINVALID, "request body is invalid")
	}
	fe := ves[0]
	field := strings.SplitN(fe.Namespace(), ".", 2)
	name := fe.Field()
	if len(field) == 2 {
		name = field[1]
	}
	switch fe.Tag() {
	case "required":
		return credvault.Errorf(credvault.EINVALID, "field %q is required", name)
	case "max":
		return credvault.Errorf(credvault.EINVALID, "field %q must be at most %s long", name, fe.Param())
	case "min":
		return credvault.Errorf(credvault.EINVALID, "field %q must be at least %s long", name, fe.Param())
	case "oneof":
		return credvault.Errorf(credvault.EINVALID, "field %q must be one of: %s", name, fe.Param())
	case "email":
		return credvault.Errorf(credvault.EINVALID, "field %q must be an email address", name)
	case "uuid", "uuid4":
		return credvault.Errorf(credvault.EINVALID, "field %q must be a UUID", name)
	case "printable_name":
		// A tag's key is not echoed: it may be the offending text.
		name, _, _ = strings.Cut(name, "[")
		r, _ := credvault.HiddenRune(fmt.Sprint(fe.Value()))
		return credvault.Errorf(credvault.EINVALID, "%s", credvault.PrintableMessage(name, r))
	}
	return credvault.Errorf(credvault.EINVALID, "field %q fails check %q", name, fe.Tag())
}
