package main

import (
	"fmt"

	"github.com/urfave/cli/v2"
)

// Completion scripts ask the binary itself (urfave/cli's --generate-bash-completion), so they stay right
// as commands are added.
const bashCompletion = `# romforge bash completion; load with: source <(romforge completion bash)
_romforge_complete() {
  local cur opts
  COMPREPLY=()
  cur="${COMP_WORDS[COMP_CWORD]}"
  opts=$("${COMP_WORDS[0]}" "${COMP_WORDS[@]:1:$COMP_CWORD-1}" --generate-bash-completion 2>/dev/null)
  COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
  [ ${#COMPREPLY[@]} -eq 0 ] && COMPREPLY=( $(compgen -f -- "${cur}") )
  return 0
}
complete -o default -F _romforge_complete romforge
`

const zshCompletion = `#compdef romforge
# romforge zsh completion; load with: source <(romforge completion zsh)
_romforge() {
  local -a opts
  opts=("${(@f)$(${words[1]} ${words[@]:1:$CURRENT-2} --generate-bash-completion 2>/dev/null)}")
  _describe 'values' opts
  _files
}
compdef _romforge romforge
`

const fishCompletion = `# romforge fish completion; load with: romforge completion fish | source
function __romforge_complete
    set -l tokens (commandline -opc)
    $tokens[1] $tokens[2..-1] --generate-bash-completion 2>/dev/null
end
complete -c romforge -f -a '(__romforge_complete)'
`

func init() {
	register(&cli.Command{
		Name:      "completion",
		Usage:     "print a shell completion script (bash, zsh or fish)",
		ArgsUsage: "bash|zsh|fish",
		Action: func(c *cli.Context) error {
			if err := needArgs(c, 1, 1, "one shell: bash, zsh or fish"); err != nil {
				return err
			}
			e := envOf(c)
			switch c.Args().First() {
			case "bash":
				fmt.Fprint(e.stdout, bashCompletion)
			case "zsh":
				fmt.Fprint(e.stdout, zshCompletion)
			case "fish":
				fmt.Fprint(e.stdout, fishCompletion)
			default:
				return usagef("completion: unknown shell %q; use bash, zsh or fish", c.Args().First())
			}
			return nil
		},
	})
}
