# bash completion for ctrecctl and ctrecd (ctrec).
#
# Installed as share/bash-completion/completions/ctrecctl and .../ctrecd,
# where bash-completion finds each by its command's name; it also works
# sourced on its own, without bash-completion's helpers. Session ids come
# from `ctrecctl status --json` and the --set keys and their values from
# `ctrecd --print-config`, so neither list can go out of date.

# The words of the command line up to the cursor, split at blanks only
# (bash also splits at = and :), into _ctrec_words; the last is the word
# being completed, "" after a blank.
_ctrec_split() {
    local line=${COMP_LINE:0:COMP_POINT}
    read -r -a _ctrec_words <<<"$line"
    [[ -z $line || $line == *[[:blank:]] ]] && _ctrec_words+=("")
}

# Sets COMPREPLY to the words of $1 that start with $2.
_ctrec_words_of() {
    local IFS=$' \t\n'
    COMPREPLY=($(compgen -W "$1" -- "$2"))
}

# Folders (and nothing else) that start with $1.
_ctrec_dirs() {
    compopt -o filenames 2>/dev/null
    COMPREPLY=($(compgen -d -- "$1"))
}

_ctrec_files() {
    compopt -o filenames 2>/dev/null
    COMPREPLY=($(compgen -f -- "$1"))
}

# The program beside the one being completed ($1: its name as typed):
# build/bin/ctrecctl goes with build/bin/ctrecd.
_ctrec_beside() {
    local typed=$1 name=$2
    if [[ $typed == */* ]]; then
        printf '%s\n' "${typed%/*}/$name"
    else
        printf '%s\n' "$name"
    fi
}

# KEY= for every option ctrecd knows, and KEY=VALUE for each value of
# those that take one of a few.
_ctrec_set_words() {
    "$1" --print-config 2>/dev/null | awk '
        /^[a-z_]+:$/ { sec = substr($1, 1, length($1) - 1); one = ""; next }
        /^ *#.*One of: / { one = $0; sub(/.*One of: /, "", one); sub(/\.$/, "", one); next }
        /^  [a-z_]+:/ {
            key = $1; sub(/:$/, "", key)
            print sec "." key "="
            n = split(one, v, /, */)
            for (i = 1; i <= n; i++) print sec "." key "=" v[i]
            one = ""
        }'
}

# Completes --set KEY=VALUE from $1 (ctrecd); bash completes only what
# follows the last = when = splits words.
_ctrec_set() {
    local cur=$2 w words=()
    _ctrec_words_of "$(_ctrec_set_words "$1")" "$cur"
    compopt -o nospace 2>/dev/null
    # The keys until an = is typed, then the key's values (as the part
    # after the =, when that is what bash replaces).
    for w in "${COMPREPLY[@]}"; do
        if [[ $cur != *=* ]]; then
            [[ $w == *= ]] && words+=("$w")
        elif [[ $w != *= ]]; then
            [[ $COMP_WORDBREAKS == *=* ]] && w=${w#"${cur%=*}="}
            words+=("$w")
        fi
    done
    COMPREPLY=("${words[@]}")
}

# Session ids (or, with pid, process ids) of the live sessions of the
# daemon the command line names with -s/--socket, else the default one.
_ctrec_sessions() {
    local ctl=$1 field=${2:-id} sock=() i
    for ((i = 1; i < ${#_ctrec_words[@]} - 1; i++)); do
        case ${_ctrec_words[i]} in
        -s | --socket) sock=(-s "${_ctrec_words[i + 1]}") ;;
        --socket=*) sock=(-s "${_ctrec_words[i]#--socket=}") ;;
        esac
    done
    "$ctl" status "${sock[@]}" -t 1 --json 2>/dev/null |
        sed -n "s/.*[{,]\"$field\":\([0-9][0-9]*\)[,}].*/\1/p"
}

_ctrecctl() {
    local _ctrec_words
    _ctrec_split
    local n=${#_ctrec_words[@]}
    local cur=${_ctrec_words[n - 1]} prev=${_ctrec_words[n - 2]:-}
    local ctl=${_ctrec_words[0]}
    local verbs="record status follow show ls start stop reload check rm gc"
    local common="-s --socket -t --timeout"
    COMPREPLY=()
    if ((n == 2)); then
        _ctrec_words_of "$verbs --help --version" "$cur"
        return
    fi
    local verb=${_ctrec_words[1]} i
    # After record's --, the command's own completion.
    if [[ $verb == record ]]; then
        for ((i = 2; i < n - 1; i++)); do
            if [[ ${_ctrec_words[i]} == -- ]]; then
                local j
                for ((j = 1; j < ${#COMP_WORDS[@]}; j++)); do
                    [[ ${COMP_WORDS[j]} == -- ]] && break
                done
                if declare -F _command_offset >/dev/null && ((j < COMP_CWORD)); then
                    _command_offset $((j + 1))
                elif ((i == n - 2)); then
                    COMPREPLY=($(compgen -c -- "$cur"))
                else
                    _ctrec_files "$cur"
                fi
                return
            fi
        done
    fi
    # The value of the option before the cursor.
    case $prev in
    -s | --socket | -c | --config) _ctrec_files "$cur"; return ;;
    -o | --output) _ctrec_dirs "$cur"; return ;;
    -f | --format)
        if [[ $verb == check ]]; then
            _ctrec_words_of "string number any" "$cur"
        else
            _ctrec_words_of "ctfs json" "$cur"
        fi
        return ;;
    --floats) _ctrec_words_of "string number any" "$cur"; return ;;
    -L | --log-level) _ctrec_words_of "error warn info debug" "$cur"; return ;;
    --values) _ctrec_words_of "all args none" "$cur"; return ;;
    --transport) _ctrec_words_of "socket fifo" "$cur"; return ;;
    --set) _ctrec_set "$(_ctrec_beside "$ctl" ctrecd)" "$cur"; return ;;
    -p | --pid) _ctrec_words_of "$(_ctrec_sessions "$ctl" pid)" "$cur"; return ;;
    -t | --timeout | --skip | --only | --steps | --older-than | --max-size | --program)
        return ;;
    esac
    local opts
    case $verb in
    record) opts="-o --output -c --config -f --format -L --log-level -q --quiet -t --timeout --values --skip --only --paused --set --transport --" ;;
    status) opts="$common --json" ;;
    follow) opts="$common -j --json -p --pid --wait --program" ;;
    show) opts="--calls --steps --json --no-source" ;;
    ls) opts="--json" ;;
    start | stop) opts="$common -a --all -p --pid" ;;
    reload) opts="$common" ;;
    check) opts="-l --live -f --floats -q --quiet" ;;
    rm) opts="" ;;
    gc) opts="--older-than --max-size --dry-run" ;;
    *) return ;;
    esac
    if [[ $cur == -* ]]; then
        _ctrec_words_of "$opts --help" "$cur"
        return
    fi
    case $verb in
    follow)
        # A live session, or a trace folder.
        _ctrec_dirs "$cur"
        COMPREPLY+=($(compgen -W "$(_ctrec_sessions "$ctl")" -- "$cur")) ;;
    start | stop) _ctrec_words_of "$(_ctrec_sessions "$ctl")" "$cur" ;;
    show | ls | check | rm | gc) _ctrec_dirs "$cur" ;;
    esac
}

_ctrecd() {
    local _ctrec_words
    _ctrec_split
    local n=${#_ctrec_words[@]}
    local cur=${_ctrec_words[n - 1]} prev=${_ctrec_words[n - 2]:-}
    COMPREPLY=()
    case $prev in
    -c | --config | -l | --listen) _ctrec_files "$cur"; return ;;
    -o | --output) _ctrec_dirs "$cur"; return ;;
    -L | --log-level) _ctrec_words_of "error warn info debug" "$cur"; return ;;
    --set) _ctrec_set "${_ctrec_words[0]}" "$cur"; return ;;
    --ready-fd | --report-fd) return ;;
    esac
    _ctrec_words_of "-c --config -l --listen -o --output -L --log-level --set --print-config --ready-fd --report-fd -h --help -V --version" "$cur"
}

complete -F _ctrecctl ctrecctl
complete -F _ctrecd ctrecd
