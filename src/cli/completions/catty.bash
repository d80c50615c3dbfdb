# catty completions for bash. Enable with: source <(catty completions bash)
# (in ~/.bashrc), or save the output as ~/.local/share/bash-completion/completions/catty.

_catty_labels() {
    # Live sessions; with --all the ended ones too. Silent and quick when no daemon runs.
    "${COMP_WORDS[0]}" list --labels "$@" 2>/dev/null
}

_catty() {
    local cur=${COMP_WORDS[COMP_CWORD]} prev=${COMP_WORDS[COMP_CWORD-1]}
    local commands="new connect attach list ls logs pull diff stop extend rm
        stop-all-sessions-dangerously login logout whoami upgrade usage completions version"
    local cmd="" at=0 i
    for ((i = 1; i < COMP_CWORD; i++)); do
        if [[ ${COMP_WORDS[i]} != -* ]]; then
            cmd=${COMP_WORDS[i]} at=$i
            break
        fi
    done
    if [[ -z $cmd ]]; then
        COMPREPLY=($(compgen -W "$commands --help --version" -- "$cur"))
        return
    fi
    # The words after the command that are not flags (nor a flag's value): the positionals.
    local positionals=0 word
    for ((i = at + 1; i < COMP_CWORD; i++)); do
        word=${COMP_WORDS[i]}
        case $word in
            --)
                # `catty new -- COMMAND ARGS`: a command, then its own arguments (files).
                [[ $cmd != new ]] && continue
                if ((i == COMP_CWORD - 1)); then
                    COMPREPLY=($(compgen -c -- "$cur"))
                else
                    COMPREPLY=($(compgen -f -- "$cur"))
                fi
                return ;;
            --agent | --region | --cpus | --memory-mb | --ttl | --since | --tail) ((i++)) ;;
            -*) ;;
            *) ((positionals++)) ;;
        esac
    done
    local flags="--help" values="" session=""
    case $cmd in
        new)
            case $prev in
                --agent) COMPREPLY=($(compgen -W "claude codex gemini shell" -- "$cur")); return ;;
                --region | --cpus | --memory-mb | --ttl) return ;;
            esac
            flags="--agent --no-upload --no-sync --region --cpus --memory-mb --ttl --help" ;;
        connect | attach) flags="--watch --help" session=live ;;
        list | ls) flags="--json --all --help" ;;
        logs)
            case $prev in --since | --tail) return ;; esac
            flags="-f --follow --since --tail --raw --help" session=live ;;
        pull) session=live ;;
        diff) flags="--stat --help" session=live ;;
        stop) flags="--discard --help" session=live ;;
        extend)
            session=live
            ((positionals == 1)) && values="30m 1h 2h 1d" ;;
        rm) session=all ;;
        stop-all-sessions-dangerously) flags="--yes-i-mean-it --help" ;;
        login)
            [[ $prev == --api ]] && return
            flags="--api --help" ;;
        logout) flags="--all --help" ;;
        usage) flags="--json --help" ;;
        completions) ((positionals == 0)) && values="bash zsh fish" ;;
    esac
    if [[ $cur == -* ]]; then
        COMPREPLY=($(compgen -W "$flags" -- "$cur"))
    elif [[ -n $session ]] && ((positionals == 0)); then
        local labels
        if [[ $session == all ]]; then labels=$(_catty_labels --all); else labels=$(_catty_labels); fi
        COMPREPLY=($(compgen -W "$labels" -- "$cur"))
    elif [[ -n $values ]]; then
        COMPREPLY=($(compgen -W "$values" -- "$cur"))
    fi
}

complete -F _catty catty
