#compdef catty
# catty completions for zsh. Enable with: source <(catty completions zsh) (in ~/.zshrc, after
# compinit), or save the output as _catty in a directory of your $fpath.

# The labels of live sessions (_catty_all_labels: the ended ones too). Silent and quick when
# no daemon runs. The arguments are compadd's, from _arguments.
_catty_labels() {
    local -a labels
    labels=(${(f)"$(catty list --labels 2>/dev/null)"})
    compadd "$@" -a labels
}

_catty_all_labels() {
    local -a labels
    labels=(${(f)"$(catty list --labels --all 2>/dev/null)"})
    compadd "$@" -a labels
}

_catty() {
    local context state state_descr line
    typeset -A opt_args
    local -a commands
    commands=(
        'new:start a session here: upload this directory, run the agent, attach'
        'connect:attach to a session again'
        'attach:attach to a session again'
        'list:the sessions'
        'ls:the sessions'
        'logs:a session'"'"'s output'
        'pull:bring a session'"'"'s work back'
        'diff:what a session changed'
        'stop:stop a session (its work is pulled first)'
        'extend:give a running session more time'
        'rm:forget a session that ended'
        'stop-all-sessions-dangerously:stop every session'
        'login:log in to a hosted catty API'
        'logout:revoke your login'
        'whoami:who you are logged in as'
        'upgrade:open a checkout for the paid plan'
        'usage:what this month cost, against your plan'
        'completions:print a shell completion script'
        'version:print catty'"'"'s version'
    )
    _arguments -C \
        '(- *)'{-h,--help}'[show help]' \
        '(- *)'{-V,--version}'[print the version]' \
        '1: :->command' \
        '*:: :->args'
    case $state in
        command) _describe -t commands 'catty command' commands ;;
        args)
            case $words[1] in
                new)
                    _arguments \
                        '--agent[the agent to run]:agent:(claude codex gemini shell)' \
                        '--no-upload[do not upload the current directory]' \
                        '--no-sync[do not bring changes back while attached]' \
                        '--region[region of the machine (Fly.io)]:region:' \
                        '--cpus[CPUs of the machine (Fly.io)]:cpus:' \
                        '--memory-mb[memory of the machine in MB (Fly.io)]:memory:' \
                        '--ttl[end the session after this long]:duration:(30m 1h 2h 1d)' \
                        '--help[show help]' \
                        '*::command:_normal' ;;
                connect | attach)
                    _arguments '--watch[watch only, read-only]' '--help[show help]' \
                        '1:session:_catty_labels' ;;
                list | ls)
                    _arguments '--json[print JSON]' '--all[also the ended sessions]' \
                        '--help[show help]' ;;
                logs)
                    _arguments {-f,--follow}'[follow new output]' \
                        '--since[start at this byte offset]:offset:' \
                        '--tail[only the last N lines]:lines:' \
                        '--raw[the bytes, escape sequences included]' '--help[show help]' \
                        '1:session:_catty_labels' ;;
                pull) _arguments '--help[show help]' '1:session:_catty_labels' ;;
                diff)
                    _arguments '--stat[a summary of the changed files]' '--help[show help]' \
                        '1:session:_catty_labels' ;;
                stop)
                    _arguments '--discard[stop without pulling its work]' '--help[show help]' \
                        '1:session:_catty_labels' ;;
                extend)
                    _arguments '--help[show help]' '1:session:_catty_labels' \
                        '2:duration:(30m 1h 2h 1d)' ;;
                rm) _arguments '--help[show help]' '1:session:_catty_all_labels' ;;
                stop-all-sessions-dangerously)
                    _arguments '--yes-i-mean-it[confirm that every session should end]' \
                        '--help[show help]' ;;
                login) _arguments '--api[the hosted API URL]:url:' '--help[show help]' ;;
                logout) _arguments '--all[every login of yours]' '--help[show help]' ;;
                whoami) _arguments '--help[show help]' ;;
                upgrade) _arguments '--help[show help]' ;;
                usage) _arguments '--json[print JSON]' '--help[show help]' ;;
                completions) _arguments '1:shell:(bash zsh fish)' ;;
            esac ;;
    esac
}

if [[ $funcstack[1] == _catty ]]; then
    _catty "$@"
else
    compdef _catty catty
fi
