package cli

import (
	"fmt"
	"sort"
	"strings"
)

// runCompletion is `credvault completion bash|zsh|fish`: a completion
// script for the commands of this package, on stdout. Install with e.g.
// `credvault completion bash > /etc/bash_completion.d/credvault`, or
// `source <(credvault completion zsh)`.
func runCompletion(args []string, env Env) error {
	fs, out := newFlags("completion")
	pos, err := parseFlags(fs, args, 1, "bash|zsh|fish [--output table|json]")
	if err != nil {
		return err
	}
	if err := checkOutput(*out); err != nil {
		return err
	}
	top := append([]string{"dev", "serve", "migrate", "bootstrap", "rewrap", "bench", "devtransit", "help"}, Commands...)
	names := make([]string, 0, len(nouns))
	for _, n := range nouns {
		names = append(names, n.name)
	}
	sort.Strings(names)
	var script string
	switch pos[0] {
	case "bash":
		var cases strings.Builder
		for _, n := range names {
			fmt.Fprintf(&cases, "    %s) COMPREPLY=($(compgen -W %q -- \"$cur\")) ;;\n", n, strings.Join(verbs(n), " "))
		}
		script = fmt.Sprintf(`# bash completion for credvault
_credvault() {
  local cur=${COMP_WORDS[COMP_CWORD]}
  if [ "$COMP_CWORD" -eq 1 ]; then
    COMPREPLY=($(compgen -W %q -- "$cur")); return
  fi
  if [ "$COMP_CWORD" -eq 2 ]; then
    case ${COMP_WORDS[1]} in
%s    completion) COMPREPLY=($(compgen -W "bash zsh fish" -- "$cur")) ;;
    esac
    return
  fi
  case $cur in -*) COMPREPLY=($(compgen -W "--output --help" -- "$cur")) ;; esac
}
complete -F _credvault credvault
`, strings.Join(top, " "), cases.String())
	case "zsh":
		var cases strings.Builder
		for _, n := range names {
			fmt.Fprintf(&cases, "      %s) compadd %s ;;\n", n, strings.Join(verbs(n), " "))
		}
		script = fmt.Sprintf(`#compdef credvault
# zsh completion for credvault
_credvault() {
  if (( CURRENT == 2 )); then
    compadd %s
  elif (( CURRENT == 3 )); then
    case ${words[2]} in
%s      completion) compadd bash zsh fish ;;
    esac
  else
    compadd -- --output --help
  fi
}
compdef _credvault credvault
`, strings.Join(top, " "), cases.String())
	case "fish":
		var b strings.Builder
		b.WriteString("# fish completion for credvault\ncomplete -c credvault -f\n")
		fmt.Fprintf(&b, "complete -c credvault -n __fish_use_subcommand -a %q\n", strings.Join(top, " "))
		for _, n := range names {
			fmt.Fprintf(&b, "complete -c credvault -n '__fish_seen_subcommand_from %s' -a %q\n", n, strings.Join(verbs(n), " "))
		}
		b.WriteString("complete -c credvault -n '__fish_seen_subcommand_from completion' -a 'bash zsh fish'\n")
		b.WriteString("complete -c credvault -l output -s o -xa 'table json'\n")
		script = b.String()
	default:
		return usageErrorf("completion: unknown shell %q (bash, zsh or fish)", pos[0])
	}
	if *out == "json" {
		return (&session{env: env}).printJSON(map[string]string{"shell": pos[0], "script": script})
	}
	_, err = fmt.Fprint(env.Stdout, script)
	return err
}
