# Reads settings from a dotenv file (.env) the way the binaries do
# (dotenvy), without running it as shell code: `NAME=value` lines,
# optionally after `export `; `#` starts a comment line, or a comment after
# an unquoted value and a space; 'single quotes' keep everything as
# written; "double quotes" take \" \\ \n \$ escapes. When a name appears
# twice, the first wins (as dotenvy, which never replaces a value already
# set). `$NAME` substitution is not done: a value that would need it is
# refused, so this script never disagrees with the binaries.

# Prints the value FILE gives NAME. Status 1 when FILE is missing or does
# not set NAME; 2 (after a message) on a value it cannot read.
dotenv_get() { # file, name
  local file="$1" name="$2" line key value rest out char
  [ -f "$file" ] || return 1
  while IFS= read -r line || [ -n "$line" ]; do
    line="${line%$'\r'}"
    line="${line#"${line%%[![:space:]]*}"}"
    [[ -z "$line" || "$line" == \#* ]] && continue
    [[ "$line" == "export "* ]] && line="${line#export }" && line="${line#"${line%%[![:space:]]*}"}"
    [[ "$line" == *=* ]] || continue
    key="${line%%=*}"
    key="${key%"${key##*[![:space:]]}"}"
    [ "$key" = "$name" ] || continue
    value="${line#*=}"
    value="${value#"${value%%[![:space:]]*}"}"
    case "$value" in
      \'*)
        rest="${value#\'}"
        [[ "$rest" == *\'* ]] || { echo "error: $file: $name: unterminated quote (scripts/up reads one-line values only)" >&2; exit 2; }
        printf '%s\n' "${rest%%\'*}"
        ;;
      \"*)
        rest="${value#\"}"
        out=""
        while [ -n "$rest" ]; do
          char="${rest:0:1}"
          rest="${rest:1}"
          if [ "$char" = '\' ]; then
            char="${rest:0:1}"
            rest="${rest:1}"
            case "$char" in
              n) out+=$'\n' ;;
              *) out+="$char" ;;
            esac
          elif [ "$char" = '"' ]; then
            printf '%s\n' "$out"
            return 0
          elif [ "$char" = '$' ]; then
            echo "error: $file: $name: \$ substitution is not supported by scripts/up; set $name in the environment instead" >&2
            exit 2
          else
            out+="$char"
          fi
        done
        echo "error: $file: $name: unterminated quote (scripts/up reads one-line values only)" >&2
        exit 2
        ;;
      *)
        value="${value%%[[:space:]]#*}"
        value="${value%"${value##*[![:space:]]}"}"
        if [[ "$value" == *'$'* ]]; then
          echo "error: $file: $name: \$ substitution is not supported by scripts/up; set $name in the environment instead" >&2
          exit 2
        fi
        printf '%s\n' "$value"
        ;;
    esac
    return 0
  done < "$file"
  return 1
}

# Exports NAME with the value in force: the environment's, else the one
# FILE gives, else DEFAULT (when given).
setting_from() { # file, name, [default]
  local file="$1" name="$2" value status
  if [ -n "${!name+x}" ]; then
    export "${name?}"
    return 0
  fi
  value="$(dotenv_get "$file" "$name")" && status=0 || status=$?
  case "$status" in
    0) export "$name=$value" ;;
    1) if [ "$#" -ge 3 ]; then export "$name=$3"; fi ;;
    *) exit 1 ;;
  esac
}
