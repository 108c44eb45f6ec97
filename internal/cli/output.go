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
