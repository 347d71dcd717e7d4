"""bash completion for ctrecctl and ctrecd: `cmake --install` puts the
script under share/bash-completion/completions under each command's name,
and bash, with the installed script sourced, completes verbs, options,
their values, --set keys, trace folders and the session ids and pids of a
live daemon (COMP_LINE, COMP_WORDS and COMP_CWORD as bash sets them)."""
import os
import subprocess
import time

from harness import BUILD, Daemon, TempDirTest, run
from test_install import cache_value

# Sets the completion variables for the line $1 (the cursor at its end)
# as bash would, splitting words at blanks and at bash's word breaks,
# calls the function $2 and prints COMPREPLY, one word a line.
DRIVER = r'''
source "$1"
line=$2
COMP_LINE=$line
COMP_POINT=${#line}
COMP_WORDS=()
rest=$line
while [[ -n $rest ]]; do
    if [[ $rest =~ ^[[:blank:]]+ ]]; then
        rest=${rest:${#BASH_REMATCH}}
    elif [[ $rest =~ ^[=:] ]]; then
        COMP_WORDS+=("${BASH_REMATCH}"); rest=${rest:1}
    else
        [[ $rest =~ ^[^[:blank:]=:]+ ]]; COMP_WORDS+=("${BASH_REMATCH}")
        rest=${rest:${#BASH_REMATCH}}
    fi
done
[[ -z $line || $line == *[[:blank:]] || $line == *[=:] ]] && COMP_WORDS+=("")
COMP_CWORD=$((${#COMP_WORDS[@]} - 1))
fn=$(complete -p "${COMP_WORDS[0]##*/}" | sed -n 's/.*-F \([^ ]*\) .*/\1/p')
"$fn"
printf '%s\n' "${COMPREPLY[@]}"
'''


class CompletionTest(TempDirTest):
    def setUp(self):
        super().setUp()
        dest = os.path.join(self.tmp, "dest")
        res = run(["cmake", "--install", BUILD], env=dict(os.environ, DESTDIR=dest))
        self.assertEqual(res.returncode, 0, res.stderr)
        prefix = dest + cache_value("CMAKE_INSTALL_PREFIX")
        self.bin = os.path.join(prefix, "bin")
        self.script = os.path.join(prefix, "share", "bash-completion", "completions",
                                   "ctrecctl")
        self.env = dict(os.environ, PATH=self.bin + ":" + os.environ["PATH"])

    def complete(self, line):
        res = run(["bash", "--norc", "-c", DRIVER, "complete", self.script, line],
                  env=self.env, cwd=self.tmp)
        self.assertEqual(res.stderr, b"", line)
        return sorted(w for w in res.stdout.decode().split("\n") if w)

    def test_installed_for_both_commands(self):
        folder = os.path.dirname(self.script)
        self.assertEqual(sorted(os.listdir(folder)), ["ctrecctl", "ctrecd"])
        res = run(["bash", "--norc", "-c", 'source "$1"; complete -p ctrecctl ctrecd',
                   "complete", os.path.join(folder, "ctrecd")])
        self.assertEqual(res.stdout.decode(),
                         "complete -F _ctrecctl ctrecctl\ncomplete -F _ctrecd ctrecd\n")

    def test_verbs_options_and_values(self):
        self.assertEqual(self.complete("ctrecctl "),
                         sorted("record status follow show ls start stop reload check rm gc "
                                "--help --version".split()))
        self.assertEqual(self.complete("ctrecctl re"), ["record", "reload"])
        self.assertIn("--paused", self.complete("ctrecctl record --"))
        self.assertIn("--skip", self.complete("ctrecctl record --"))
        self.assertEqual(self.complete("ctrecctl record --values "), ["all", "args", "none"])
        self.assertEqual(self.complete("ctrecctl record -f "), ["ctfs", "json"])
        self.assertEqual(self.complete("ctrecctl record -L d"), ["debug"])
        self.assertEqual(self.complete("ctrecctl check --floats "), ["any", "number", "string"])
        self.assertEqual(self.complete("ctrecctl show --n"), ["--no-source"])
        self.assertEqual(self.complete("ctrecctl gc --d"), ["--dry-run"])
        self.assertEqual(self.complete("ctrecctl follow --w"), ["--wait"])
        self.assertEqual(self.complete("ctrecd --print"), ["--print-config"])
        self.assertEqual(self.complete("ctrecd -L "), ["debug", "error", "info", "warn"])

    def test_set_keys_and_values_from_the_daemon(self):
        self.assertEqual(self.complete("ctrecd --set output.fo"), ["output.format="])
        # bash replaces only what follows the =.
        self.assertEqual(self.complete("ctrecd --set output.format="), ["ctfs", "json"])
        self.assertEqual(self.complete("ctrecctl record --set record.start=p"), ["paused"])
        keys = self.complete("ctrecctl record --set limits.")
        self.assertIn("limits.value_budget=", keys)
        self.assertTrue(all(k.startswith("limits.") and k.endswith("=") for k in keys))

    def test_trace_folders(self):
        for d in ("traces/a-1", "traces/b-2"):
            os.makedirs(os.path.join(self.tmp, d))
        open(os.path.join(self.tmp, "traces", "note.txt"), "w").close()
        for verb in ("show --calls", "check", "rm traces/a-1", "ls", "gc"):
            self.assertEqual(self.complete(f"ctrecctl {verb} traces/"),
                             ["traces/a-1", "traces/b-2"], verb)

    def test_sessions_of_a_live_daemon(self):
        d = Daemon(self.tmp)
        p = subprocess.Popen(["ruby", "-e", "$stdout.sync = true; puts 1; sleep 30"],
                             env=d.env(), stdout=subprocess.PIPE)
        self.addCleanup(p.stdout.close)
        self.addCleanup(p.wait)
        self.addCleanup(p.kill)
        p.stdout.readline()
        for _ in range(100):
            if self.complete(f"ctrecctl stop -s {d.sock} "):
                break
            time.sleep(0.05)
        self.assertEqual(self.complete(f"ctrecctl stop -s {d.sock} "), ["1"])
        self.assertEqual(self.complete(f"ctrecctl start --socket {d.sock} --pid "),
                         [str(p.pid)])
        follow = self.complete(f"ctrecctl follow -s {d.sock} ")
        self.assertIn("1", follow)
        # Nothing to offer from a daemon that is not there.
        self.assertEqual(self.complete("ctrecctl start -s /nonexistent/sock "), [])
