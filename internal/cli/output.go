package cli

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"text/tabwriter"

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

// table prints rows under a header, columns aligned.
func (s *session) table(header []string, rows [][]string) error {
	w := tabwriter.NewWriter(s.env.Stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(w, strings.Join(header, "\t"))
	for _, r := range rows {
		fmt.Fprintln(w, strings.Join(r, "\t"))
	}
	return w.Flush()
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
