# catty completions for fish. Enable with: catty completions fish | source (in
# ~/.config/fish/config.fish), or save the output as ~/.config/fish/completions/catty.fish.

function __catty_labels
    # Live sessions; with --all the ended ones too. Silent and quick when no daemon runs.
    catty list --labels $argv 2>/dev/null
end

set -l commands new connect attach list ls logs pull diff stop extend rm stop-all-sessions-dangerously login logout whoami upgrade usage completions version
set -l sessions connect attach logs pull diff stop extend

complete -c catty -f
complete -c catty -n "not __fish_seen_subcommand_from $commands" -s h -l help -d 'show help'
complete -c catty -n "not __fish_seen_subcommand_from $commands" -s V -l version -d 'print the version'
complete -c catty -n "not __fish_seen_subcommand_from $commands" -a new -d 'start a session here'
complete -c catty -n "not __fish_seen_subcommand_from $commands" -a 'connect attach' -d 'attach to a session again'
complete -c catty -n "not __fish_seen_subcommand_from $commands" -a 'list ls' -d 'the sessions'
complete -c catty -n "not __fish_seen_subcommand_from $commands" -a logs -d "a session's output"
complete -c catty -n "not __fish_seen_subcommand_from $commands" -a pull -d "bring a session's work back"
complete -c catty -n "not __fish_seen_subcommand_from $commands" -a diff -d 'what a session changed'
complete -c catty -n "not __fish_seen_subcommand_from $commands" -a stop -d 'stop a session'
complete -c catty -n "not __fish_seen_subcommand_from $commands" -a extend -d 'give a running session more time'
complete -c catty -n "not __fish_seen_subcommand_from $commands" -a rm -d 'forget a session that ended'
complete -c catty -n "not __fish_seen_subcommand_from $commands" -a stop-all-sessions-dangerously -d 'stop every session'
complete -c catty -n "not __fish_seen_subcommand_from $commands" -a login -d 'log in to a hosted catty API'
complete -c catty -n "not __fish_seen_subcommand_from $commands" -a logout -d 'revoke your login'
complete -c catty -n "not __fish_seen_subcommand_from $commands" -a whoami -d 'who you are logged in as'
complete -c catty -n "not __fish_seen_subcommand_from $commands" -a upgrade -d 'open a checkout for the paid plan'
complete -c catty -n "not __fish_seen_subcommand_from $commands" -a usage -d 'what this month cost, against your plan'
complete -c catty -n "not __fish_seen_subcommand_from $commands" -a completions -d 'print a shell completion script'
complete -c catty -n "not __fish_seen_subcommand_from $commands" -a version -d "print catty's version"

complete -c catty -n "__fish_seen_subcommand_from $commands" -l help -d 'show help'
complete -c catty -n "__fish_seen_subcommand_from new" -l agent -x -a 'claude codex gemini shell' -d 'the agent to run'
complete -c catty -n "__fish_seen_subcommand_from new" -l no-upload -d 'do not upload the current directory'
complete -c catty -n "__fish_seen_subcommand_from new" -l no-sync -d 'do not bring changes back while attached'
complete -c catty -n "__fish_seen_subcommand_from new" -l region -x -d 'region of the machine (Fly.io)'
complete -c catty -n "__fish_seen_subcommand_from new" -l cpus -x -d 'CPUs of the machine (Fly.io)'
complete -c catty -n "__fish_seen_subcommand_from new" -l memory-mb -x -d 'memory of the machine in MB (Fly.io)'
complete -c catty -n "__fish_seen_subcommand_from new" -l ttl -x -a '30m 1h 2h 1d' -d 'end the session after this long'
complete -c catty -n "__fish_seen_subcommand_from connect attach" -l watch -d 'watch only, read-only'
complete -c catty -n "__fish_seen_subcommand_from login" -l api -x -d 'the hosted API URL'
complete -c catty -n "__fish_seen_subcommand_from logout" -l all -d 'every login of yours'
complete -c catty -n "__fish_seen_subcommand_from usage" -l json -d 'print JSON'
complete -c catty -n "__fish_seen_subcommand_from list ls" -l json -d 'print JSON'
complete -c catty -n "__fish_seen_subcommand_from list ls" -l all -d 'also the ended sessions'
complete -c catty -n "__fish_seen_subcommand_from logs" -s f -l follow -d 'follow new output'
complete -c catty -n "__fish_seen_subcommand_from logs" -l since -x -d 'start at this byte offset'
complete -c catty -n "__fish_seen_subcommand_from logs" -l tail -x -d 'only the last N lines'
complete -c catty -n "__fish_seen_subcommand_from logs" -l raw -d 'the bytes, escape sequences included'
complete -c catty -n "__fish_seen_subcommand_from diff" -l stat -d 'a summary of the changed files'
complete -c catty -n "__fish_seen_subcommand_from stop" -l discard -d 'stop without pulling its work'
complete -c catty -n "__fish_seen_subcommand_from stop-all-sessions-dangerously" -l yes-i-mean-it -d 'confirm that every session should end'
complete -c catty -n "__fish_seen_subcommand_from completions; and __fish_is_nth_token 2" -a 'bash zsh fish'

# The session is the command's first argument (token 2, after catty and the command).
complete -c catty -n "__fish_seen_subcommand_from $sessions; and __fish_is_nth_token 2" -a '(__catty_labels)' -d session
complete -c catty -n "__fish_seen_subcommand_from rm; and __fish_is_nth_token 2" -a '(__catty_labels --all)' -d session
complete -c catty -n "__fish_seen_subcommand_from extend; and __fish_is_nth_token 3" -a '30m 1h 2h 1d' -d 'more time'
