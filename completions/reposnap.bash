# bash completion for reposnap(8).
# Install: copy to /usr/share/bash-completion/completions/reposnap (or source it).

# Names of the configured repositories, from `reposnap status --json` (with
# the --config given on the command line, if any).
_reposnap_repos() {
    local conf=() i
    for ((i = 1; i < COMP_CWORD; i++)); do
        case ${COMP_WORDS[i]} in
            -c|--config) conf=(--config "${COMP_WORDS[i+1]}") ;;
        esac
    done
    reposnap "${conf[@]}" status --json 2>/dev/null |
        grep -o '"name": *"[^"]*"' | sed 's/.*"\([^"]*\)"$/\1/'
}

_reposnap() {
    local cur prev cmd sub i
    cur=${COMP_WORDS[COMP_CWORD]}
    prev=${COMP_WORDS[COMP_CWORD-1]}
    local commands="sync check verify list status path diff exec gc rollback pin unpin revert migrate mount stamp help"

    case $prev in
        -c|--config|--log-file)
            COMPREPLY=($(compgen -f -- "$cur"))
            return
            ;;
    esac

    # The command: the first word that is not an option or an option's value.
    for ((i = 1; i < COMP_CWORD; i++)); do
        case ${COMP_WORDS[i]} in
            -c|--config|--log-file) ((i++)) ;;
            -*) ;;
            *) if [[ -z $cmd ]]; then cmd=${COMP_WORDS[i]}; elif [[ -z $sub ]]; then sub=${COMP_WORDS[i]}; fi ;;
        esac
    done

    if [[ -z $cmd ]]; then
        if [[ $cur == -* ]]; then
            COMPREPLY=($(compgen -W "--config --quiet --verbose --json --log-file --version --help" -- "$cur"))
        else
            COMPREPLY=($(compgen -W "$commands" -- "$cur"))
        fi
        return
    fi

    local opts=""
    case $cmd in
        sync) opts="--no-wait --allow-older --dry-run --json --verbose --log-file" ;;
        verify) opts="--full --json" ;;
        check|status|path|diff|pin|unpin|mount) opts="--json" ;;
        list)
            COMPREPLY=($(compgen -W "--json --help" -- "$cur"))
            return
            ;;
        rollback) opts="--no-wait --json" ;;
        gc) opts="--dry-run --json" ;;
        revert) opts="--force --no-wait --json" ;;
        migrate) opts="--no-wait --json" ;;
        help)
            COMPREPLY=($(compgen -W "$commands" -- "$cur"))
            return
            ;;
        stamp)
            if [[ -z $sub ]]; then
                COMPREPLY=($(compgen -W "touch show run help" -- "$cur"))
            elif [[ ($sub == show || $sub == touch) && $cur == -* ]]; then
                COMPREPLY=($(compgen -W "--json" -- "$cur"))
            else
                COMPREPLY=($(compgen -d -- "$cur"))
            fi
            return
            ;;
        exec)
            # After the repository and --, the command's own words.
            if [[ -n $sub ]]; then
                COMPREPLY=($(compgen -c -- "$cur"))
                return
            fi
            ;;
    esac
    if [[ $cur == -* ]]; then
        COMPREPLY=($(compgen -W "$opts --help" -- "$cur"))
    else
        COMPREPLY=($(compgen -W "$(_reposnap_repos)" -- "$cur"))
    fi
}

complete -F _reposnap reposnap
