# bash completion for torfetch                                         -*- shell-script -*-
# Install as /usr/share/bash-completion/completions/torfetch (the PKGBUILD does), or source it from ~/.bashrc.
# Plain bash (no bash-completion helpers needed). tests/contrib/test_completions.py checks that these lists match
# torfetch's argument parsers: an option added to torfetch without a line here fails that test.

# Per command: every option, and those of them that take a value (so that a value is never completed as an option).
_torfetch_opts_fetch='-h --help -v --verbose -q --quiet -O --output --config --transparency-url --pubkey
    --pubkey-file --proxy --bypass-proxy-for-pkgs --rebuilder --required-rebuild-confirms --rebuilder-key
    --fail-on-bad --log-url --log-key --log-origin --state-dir --no-upload --sigsum-policy --sigsum-key --direct
    --isolate --tor-control --tor --tor-config --audit-circuits --pacman-user-agent --pacman-conf --max-size --connect-timeout --read-timeout --deadline
    --rebuilder-timeout --lookup-timeout --low-speed-limit --low-speed-time --version'
_torfetch_args_fetch='-O --output --config --transparency-url --pubkey --pubkey-file --proxy --rebuilder
    --required-rebuild-confirms --rebuilder-key --log-url --log-key --log-origin --state-dir --sigsum-policy
    --sigsum-key --isolate --tor-control --tor --tor-config --pacman-conf --max-size --connect-timeout --read-timeout --deadline --rebuilder-timeout --lookup-timeout
    --low-speed-limit --low-speed-time'
_torfetch_opts_log_verify_entry='-h --help --log-key'
_torfetch_args_log_verify_entry='--log-key'
_torfetch_opts_log_status='-h --help --state-dir'
_torfetch_args_log_status='--state-dir'
_torfetch_opts_setup='-h --help --user --state-dir --pacman-conf'
_torfetch_args_setup='--user --state-dir --pacman-conf'
_torfetch_opts_sign='-h --help -v --verbose --repo-url --repo-name --architecture --repo-db --signature-dir
    --pubkey-path --seckey-path --skip-upload --reupload-sigs --dry-run --log-url --log-key --state-dir --proxy
    --jobs --sigsum-policy --sigsum-key-path --sigsum-token'
_torfetch_args_sign='--repo-url --repo-name --architecture --repo-db --signature-dir --pubkey-path --seckey-path
    --log-url --log-key --state-dir --proxy --jobs --sigsum-policy --sigsum-key-path --sigsum-token'
_torfetch_opts_monitor='-h --help -v --verbose --pubkey --repo-db --log-url --log-key --state-dir --signer-state
    --json --proxy --jobs --sigsum-policy --sigsum-key'
_torfetch_args_monitor='--pubkey --repo-db --log-url --log-key --state-dir --signer-state --proxy --jobs
    --sigsum-policy --sigsum-key'
_torfetch_opts_prefetch='-h --help -v --verbose -q --quiet --config --transparency-url --pubkey --pubkey-file
    --proxy --bypass-proxy-for-pkgs --rebuilder --required-rebuild-confirms --rebuilder-key --fail-on-bad
    --log-url --log-key --log-origin --state-dir --no-upload --direct --isolate --tor-control --tor --tor-config
    --audit-circuits --pacman-user-agent --pacman-conf --max-size --connect-timeout --read-timeout --deadline
    --rebuilder-timeout --lookup-timeout --low-speed-limit --low-speed-time --version --jobs --sigsum-policy --sigsum-key'
_torfetch_args_prefetch='--config --transparency-url --pubkey --pubkey-file --proxy --rebuilder
    --required-rebuild-confirms --rebuilder-key --log-url --log-key --log-origin --state-dir --isolate
    --tor-control --tor --tor-config --pacman-conf --max-size --connect-timeout --read-timeout --deadline
    --rebuilder-timeout --lookup-timeout --low-speed-limit --low-speed-time --jobs --sigsum-policy --sigsum-key'
_torfetch_opts_upgrade='-h --help -v --verbose -q --quiet --config --transparency-url --pubkey --pubkey-file
    --proxy --bypass-proxy-for-pkgs --rebuilder --required-rebuild-confirms --rebuilder-key --fail-on-bad
    --log-url --log-key --log-origin --state-dir --no-upload --direct --isolate --tor-control --tor --tor-config
    --audit-circuits --pacman-user-agent --pacman-conf --max-size --connect-timeout --read-timeout --deadline
    --rebuilder-timeout --lookup-timeout --low-speed-limit --low-speed-time --version --jobs --sigsum-policy --sigsum-key'
_torfetch_args_upgrade='--config --transparency-url --pubkey --pubkey-file --proxy --rebuilder
    --required-rebuild-confirms --rebuilder-key --log-url --log-key --log-origin --state-dir --isolate
    --tor-control --tor --tor-config --pacman-conf --max-size --connect-timeout --read-timeout --deadline
    --rebuilder-timeout --lookup-timeout --low-speed-limit --low-speed-time --jobs --sigsum-policy --sigsum-key'

# The value of option $1: choices where torfetch has them, files or directories where it reads or writes one,
# nothing where it wants a URL, key, name or number (a wrong guess would be worse than none).
_torfetch_value()
{
    local cur=$2
    case $1 in
        --isolate) COMPREPLY=($(compgen -W 'purpose package' -- "$cur")) ;;
        --tor) COMPREPLY=($(compgen -W 'launch' -- "$cur")) ;;
        -O | --output | --config | --pubkey-file | --tor-config | --log-key | --pacman-conf | --pubkey-path | \
            --seckey-path | --repo-db | --sigsum-policy | --sigsum-key)
            compopt -o filenames 2>/dev/null
            COMPREPLY=($(compgen -f -- "$cur")) ;;
        --state-dir | --signature-dir | --signer-state)
            compopt -o filenames 2>/dev/null
            COMPREPLY=($(compgen -d -- "$cur")) ;;
        --pubkey)
            # torfetch monitor reads a .pub file too; the fetch form wants the base64 line
            if [[ $3 == monitor ]]; then
                compopt -o filenames 2>/dev/null
                COMPREPLY=($(compgen -f -- "$cur"))
            fi ;;
        --sigsum-policy | --sigsum-key | --sigsum-key-path | --sigsum-token)  # Sigsum files (a key may be hex)
            compopt -o filenames 2>/dev/null
            COMPREPLY=($(compgen -f -- "$cur")) ;;
        --user) COMPREPLY=($(compgen -u -- "$cur")) ;;
        *) COMPREPLY=() ;;
    esac
}

_torfetch()
{
    local cur=${COMP_WORDS[COMP_CWORD]} prev= cmd=fetch
    ((COMP_CWORD > 0)) && prev=${COMP_WORDS[COMP_CWORD - 1]}
    COMPREPLY=()
    # --opt=value: bash splits it into "--opt" "=" "value" (COMP_WORDBREAKS)
    if [[ $cur == = ]]; then
        cur=
    elif [[ $prev == = && $COMP_CWORD -ge 2 ]]; then
        prev=${COMP_WORDS[COMP_CWORD - 2]}
    fi

    # torfetch runs a subcommand only when it is the first argument
    case ${COMP_WORDS[1]} in
        setup | sign | monitor | prefetch | upgrade)
            ((COMP_CWORD > 1)) && cmd=${COMP_WORDS[1]} ;;
        log)
            if ((COMP_CWORD == 2)); then
                COMPREPLY=($(compgen -W 'verify-entry status -h --help' -- "$cur"))
                return 0
            elif ((COMP_CWORD > 2)); then
                case ${COMP_WORDS[2]} in
                    verify-entry) cmd=log_verify_entry ;;
                    status) cmd=log_status ;;
                    *) return 0 ;;
                esac
            fi ;;
    esac

    local opts args
    eval "opts=\$_torfetch_opts_$cmd args=\$_torfetch_args_$cmd"
    if [[ $prev == -* ]] && [[ " ${args//$'\n'/ } " == *" $prev "* ]]; then
        _torfetch_value "$prev" "$cur" "$cmd"
        return 0
    fi
    if [[ $cur == -* ]]; then
        COMPREPLY=($(compgen -W "$opts" -- "$cur"))
        return 0
    fi
    case $cmd in
        fetch)
            ((COMP_CWORD == 1)) && COMPREPLY=($(compgen -W 'log setup sign monitor prefetch upgrade' -- "$cur")) ;;
        log_verify_entry)
            compopt -o filenames 2>/dev/null
            COMPREPLY=($(compgen -f -- "$cur")) ;;
    esac
    return 0
}
complete -F _torfetch torfetch
