"""`cmake --install` into a temporary DESTDIR: the layout, the systemd units
naming the installed daemon, config and man pages, the man pages
themselves, and `systemd-analyze verify` on the installed units."""
import os
import re
import shutil
import subprocess

from harness import BUILD, RUBY_PROGRAMS, TempDirTest, run, trace_folders

UNITS = ("ctrecd.service", "ctrecd.socket")


def cache_value(name):
    """A variable of the build's CMakeCache.txt."""
    with open(os.path.join(BUILD, "CMakeCache.txt")) as f:
        for line in f:
            m = re.match(rf"{name}:\w+=(.*)$", line)
            if m:
                return m.group(1)
    raise KeyError(name)


def unit_settings(path):
    """{key: [values]} of a unit file."""
    out = {}
    with open(path) as f:
        for line in f:
            line = line.strip()
            if "=" in line and not line.startswith(("#", ";", "[")):
                key, value = line.split("=", 1)
                out.setdefault(key, []).append(value)
    return out


class InstallTest(TempDirTest):
    def setUp(self):
        super().setUp()
        self.dest = os.path.join(self.tmp, "dest")
        res = run(["cmake", "--install", BUILD], env=dict(os.environ, DESTDIR=self.dest))
        self.assertEqual(res.returncode, 0, res.stderr)
        self.prefix = cache_value("CMAKE_INSTALL_PREFIX")
        self.unit_dir = self.at(os.path.join(self.prefix, "lib", "systemd", "system"))
        # Installed absolute paths, as they are once DESTDIR is gone.
        self.files = {os.path.join(r, f)[len(self.dest):]
                      for r, _, fs in os.walk(self.dest) for f in fs}

    def installed(self, suffix):
        """The one installed file whose path ends with suffix."""
        found = [f for f in self.files if f.endswith(suffix)]
        self.assertEqual(len(found), 1, f"{suffix} installed as {found}")
        return found[0]

    def at(self, path):
        """Where an installed absolute path is under DESTDIR."""
        return self.dest + path

    def documented_pages(self):
        """(unit, name, section) for every man page a unit's Documentation= names."""
        pages = []
        for unit in UNITS:
            docs = " ".join(unit_settings(os.path.join(self.unit_dir, unit))
                            .get("Documentation", [])).split()
            self.assertTrue(docs, f"{unit} names no documentation")
            for doc in docs:
                m = re.fullmatch(r"man:([\w.-]+)\((\d)\)", doc)
                self.assertIsNotNone(m, doc)
                pages.append((unit, m.group(1), m.group(2)))
        return pages

    def test_layout(self):
        for want in ("/bin/ctrecd", "/bin/ctrecctl", "/etc/ctrec/ctrec.yaml",
                     "/lib/systemd/system/ctrecd.service", "/lib/systemd/system/ctrecd.socket",
                     "/lib/sysusers.d/ctrec.conf", "/lib/tmpfiles.d/ctrec.conf",
                     "/ctrec/ruby/ctrec.so", "/man8/ctrecd.8", "/man1/ctrecctl.1",
                     "/man5/ctrec.yaml.5"):
            self.assertTrue(self.installed(want).startswith(("/etc/", self.prefix + "/")), want)
        # The installed ctrecctl finds its installed daemon and shim.
        out_dir = os.path.join(self.tmp, "out")
        res = run([self.at(self.installed("/bin/ctrecctl")), "record", "-q", "-o", out_dir, "--",
                   "ruby", os.path.join(RUBY_PROGRAMS, "addition.rb")])
        self.assertEqual(res.returncode, 0, res.stderr)
        (folder,) = trace_folders(out_dir)
        # CTFS is the default format.
        self.assertTrue(os.path.isfile(os.path.join(folder, "trace.ct")))

    def test_service_runs_the_installed_daemon_and_config(self):
        svc = unit_settings(os.path.join(self.unit_dir, "ctrecd.service"))
        argv = svc["ExecStart"][0].split()
        self.assertEqual(argv[0], self.installed("/bin/ctrecd"))
        self.assertTrue(os.access(self.at(argv[0]), os.X_OK), argv[0])
        config = argv[argv.index("--config") + 1]
        self.assertEqual(config, self.installed("/etc/ctrec/ctrec.yaml"))
        # The installed daemon loads the installed config.
        res = run([self.at(argv[0]), "--config", self.at(config), "--print-config"])
        self.assertEqual(res.returncode, 0, res.stderr)
        for unit in UNITS:
            with open(os.path.join(self.unit_dir, unit)) as f:
                self.assertNotIn("@", f.read(), f"{unit} has an unconfigured @VAR@")

    def test_documented_man_pages_are_installed_and_clean(self):
        pages = self.documented_pages()
        self.assertIn(("ctrecd.service", "ctrecd", "8"), pages)
        for name, section in {(n, s) for _, n, s in pages} | {("ctrecctl", "1")}:
            page = self.at(self.installed(f"/man{section}/{name}.{section}"))
            with open(page) as f:
                text = f.read()
            self.assertNotIn("@", text.replace("\\(at", ""), f"{page} has an unconfigured @VAR@")
            self.assertRegex(text, rf'(?m)^\.TH {re.escape(name.upper())} {section} ')
            # groff warns (-ww) about every macro or escape it does not know.
            res = run(["groff", "-man", "-Tutf8", "-ww", "-z", page])
            self.assertEqual((res.returncode, res.stderr.decode()), (0, ""), page)

    def test_systemd_analyze_verify(self):
        if not shutil.which("systemd-analyze"):
            self.skipTest("systemd-analyze not installed (the man page test still runs)")
        # verify checks that ExecStart exists and that `man` finds every
        # Documentation= page: point both at the DESTDIR copy.
        units = os.path.join(self.tmp, "units")
        os.makedirs(units)
        for unit in UNITS:
            with open(os.path.join(self.unit_dir, unit)) as f:
                text = f.read().replace(self.prefix + "/", self.dest + self.prefix + "/")
            with open(os.path.join(units, unit), "w") as f:
                f.write(text)
        mandir = os.path.dirname(os.path.dirname(self.at(self.installed("/man8/ctrecd.8"))))
        env = dict(os.environ, MANPATH=mandir)
        res = subprocess.run(["systemd-analyze", "verify", *(os.path.join(units, u) for u in UNITS)],
                             env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=120)
        # Other units of the machine may draw warnings of their own.
        problems = [line for line in res.stderr.decode().splitlines()
                    if any(u in line for u in UNITS)]
        self.assertEqual((res.returncode, problems), (0, []), res.stderr.decode())


if __name__ == "__main__":
    import unittest
    unittest.main()
