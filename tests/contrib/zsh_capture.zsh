# usage: zsh -f capture.zsh FPATH_DIR WORKDIR 'command line to complete'
zmodload zsh/zpty || exit 2
zpty z zsh -f -i
zpty -w z "PROMPT= RPROMPT=; setopt no_beep; cd ${(q)2}; fpath=(${(q)1} \$fpath); autoload -Uz compinit; compinit -u -D"
# what completion would offer, one "CAND:" line each; the markers are spelled so that their echo does not match
zpty -w z 'compadd () {
  if [[ ${@[1,(i)(-|--)]} == *-(O|A|D)\ * ]]; then builtin compadd "$@"; return $?; fi
  typeset -a __hits
  builtin compadd -A __hits "$@"
  (( $#__hits == 0 )) && return 1
  local h; for h in $__hits; do print -r -- "C""AND:$h"; done
  builtin compadd "$@"
}'
zpty -w z 'null-line () { print -r -- "C""AND-END" }; comppostfuncs=(null-line exit)'
zpty -w z "bindkey '^I' complete-word"
zpty -n -w z "$3"$'\t'
integer tries=0
local line
while (( tries++ < 2000 )) && zpty -r z line; do
  line=${line//$'\r'/}
  [[ $line == *CAND-END* ]] && break
  [[ $line == *CAND:* ]] && print -r -- ${line#*CAND:}
done
zpty -d z
