package cli

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"text/tabwriter"
	"unicode"

	"credvault/api/client"
)

// result checks a generated call's answer and, with --output json, prints
// its body as credvault sent it (indented). It returns true when the
// caller should print a table.
func (s *session) result(output string, resp *http.Response, body []byte) (table bool, _ error) {
	if err := client.Check(resp, body); err != nil {
		return false, err
	}
	if output == "json" {
		var buf bytes.Buffer
		if json.Indent(&buf, body, "", "  ") != nil {
			buf.Reset()
			buf.Write(body)
		}
		buf.WriteByte('\n')
		_, err := s.env.Stdout.Write(buf.Bytes())
		return false, err
	}
	return true, nil
}

// table prints rows under a header, columns aligned. Cells pass through
// terminalSafe: names and emails are other people's input.
func (s *session) table(header []string, rows [][]string) error {
	w := tabwriter.NewWriter(s.env.Stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(w, strings.Join(header, "\t"))
	cells := make([]string, 0, len(header))
	for _, r := range rows {
		cells = cells[:0]
		for _, c := range r {
			cells = append(cells, terminalSafe(c))
		}
		fmt.Fprintln(w, strings.Join(cells, "\t"))
	}
	return w.Flush()
}

// terminalSafe writes each control character of s (C0, DEL, C1: the
// starts of terminal escape sequences, and the newline and tab that would
// forge rows and columns) and each bidirectional override or isolate
// (Unicode UAX #9, which reorder what follows on screen) as a Go escape
// such as \x1b or \u202e; every other character is kept.
func terminalSafe(s string) string {
	if strings.IndexFunc(s, unsafeOnTerminal) < 0 {
		return s
	}
	var b strings.Builder
	for _, r := range s {
		if unsafeOnTerminal(r) {
			q := strconv.QuoteRune(r)
			b.WriteString(q[1 : len(q)-1])
			continue
		}
		b.WriteRune(r)
	}
	return b.String()
}

func unsafeOnTerminal(r rune) bool {
	return unicode.IsControl(r) || r == '\u061c' || r == '\u200e' || r == '\u200f' ||
		(r >= '\u202a' && r <= '\u202e') || (r >= '\u2066' && r <= '\u2069')
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// rowsOf turns a listing's items into table rows.
func rowsOf[T any](items []T, row func(T) []string) [][]string {
	rows := make([][]string, 0, len(items))
	for _, it := range items {
		rows = append(rows, row(it))
	}
	return rows
}

// deleted reports a deletion (204, no body): "Deleted <what> <id>" in
// table mode, {"id":…,"deleted":true} with --output json.
func (s *session) deleted(output, what, id string, resp *http.Response, body []byte) error {
	if err := client.Check(resp, body); err != nil {
		return err
	}
	if output == "json" {
		return s.printJSON(map[string]any{"id": id, "deleted": true})
	}
	_, err := fmt.Fprintf(s.env.Stdout, "Deleted %s %s\n", what, id)
	return err
}

// printJSON writes v indented, for --output json of commands whose
// answer is not a credvault body.
func (s *session) printJSON(v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	_, err = s.env.Stdout.Write(append(b, '\n'))
	return err
}
