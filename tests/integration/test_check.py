"""`ctrecctl check`: real traces pass, and each rule it enforces has a trace
that breaks it and the exact message that names the file and record.

The broken traces start from a small valid one (the constructed example of
CodeTracer's format: a top-level call, a call of add(2, 3), its return, one
line of output) and change one thing each."""
import json
import os
import re
import resource
import shutil
import subprocess
import threading
import time

from harness import (BUILD, CTRECCTL, RUBY_PROGRAMS, TempDirTest, record, run,
                     trace_folders)
from test_python_record import OTHER_PYTHONS, PY_PROGRAMS, PYTHON

INT = {"kind": "Int", "i": 5, "type_id": 1}


def base_records(program):
    return [
        {"Path": program},
        {"Function": {"path_id": 0, "line": 1, "name": "<toplevel>"}},
        {"Call": {"function_id": 0, "args": []}},
        {"Type": {"kind": 30, "lang_type": "None", "specific_info": {"kind": "None"}}},
        {"Type": {"kind": 7, "lang_type": "int", "specific_info": {"kind": "None"}}},
        {"Step": {"path_id": 0, "line": 1}},
        {"Step": {"path_id": 0, "line": 4}},
        {"Function": {"path_id": 0, "line": 1, "name": "add"}},
        {"VariableName": "a"},
        {"VariableName": "b"},
        {"Step": {"path_id": 0, "line": 1}},
        {"Call": {"function_id": 1, "args": [
            {"variable_id": 0, "value": {"kind": "Int", "i": 2, "type_id": 1}},
            {"variable_id": 1, "value": {"kind": "Int", "i": 3, "type_id": 1}}]}},
        {"Step": {"path_id": 0, "line": 2}},
        {"Value": {"variable_id": 0, "value": {"kind": "Int", "i": 2, "type_id": 1}}},
        {"Value": {"variable_id": 1, "value": {"kind": "Int", "i": 3, "type_id": 1}}},
        {"Return": {"return_value": INT}},
        {"Step": {"path_id": 0, "line": 5}},
        {"VariableName": "x"},
        {"Value": {"variable_id": 2, "value": INT}},
        {"Event": {"kind": 0, "metadata": "", "content": "5\n"}},
    ]


def value_at(recs, value, index=18):
    """recs with the Value record at index holding value instead."""
    recs[index] = {"Value": {"variable_id": 2, "value": value}}


# (name, change to the records, the line `ctrecctl check` must print).
# Records count from 0: the base trace has 20 (0-19), so an appended record
# is number 20.
RECORD_RULES = [
    # The reader's hard failures (trace-format §5.2).
    ("return_without_call",
     lambda r: r.extend([{"Return": {"return_value": INT}}] * 2),
     "trace.json: record 21: Return without an open Call"),
    ("drop_last_step_too_early",
     lambda r: r.insert(6, "DropLastStep"),
     "trace.json: record 6: DropLastStep needs two earlier Steps (the reader panics)"),
    ("variable_cell_at_depth_0",
     lambda r: r.extend([{"Return": {"return_value": INT}},
                         {"VariableCell": {"variable_id": 0, "place": 1}}]),
     "trace.json: record 21: VariableCell without an open Call (the reader panics)"),
    ("assign_compound_item_without_compound",
     lambda r: r.append({"AssignCompoundItem": {"place": 7, "index": 0, "item_place": 8}}),
     "trace.json: record 20: AssignCompoundItem.place 7 holds no earlier CompoundValue "
     "(the reader panics)"),
    ("compound_not_sequence",
     lambda r: r.append({"CompoundValue": {"place": 7, "value": INT}}),
     "trace.json: record 20: CompoundValue.value must be a Sequence (the reader panics "
     "otherwise)"),
    ("cell_outside_compound",  # R7
     lambda r: value_at(r, {"kind": "Sequence", "is_slice": False, "type_id": 1,
                            "elements": [{"kind": "Cell", "place": 3}]}),
     "trace.json: record 18: Value.value[0]: a Cell value outside a CompoundValue "
     "(the reader cannot show it)"),
    ("unknown_function_id",
     lambda r: r[11]["Call"].update(function_id=5),
     "trace.json: record 11: Call.function_id 5 refers to no earlier Function record (2 so far)"),
    # R1: intern before use.
    ("step_path_unknown",
     lambda r: r[6]["Step"].update(path_id=1),
     "trace.json: record 6: Step.path_id 1 refers to no earlier Path record (1 so far)"),
    ("function_path_unknown",
     lambda r: r[7]["Function"].update(path_id=3),
     "trace.json: record 7: Function.path_id 3 refers to no earlier Path record (1 so far)"),
    ("variable_before_its_name",
     lambda r: r.insert(18, r.pop(17)),
     "trace.json: record 17: Value.variable_id 2 refers to no earlier VariableName record "
     "(2 so far)"),
    ("type_before_its_record",
     lambda r: value_at(r, {"kind": "Int", "i": 5, "type_id": 2}),
     "trace.json: record 18: Value.value.type_id 2 refers to no earlier Type record (2 so far)"),
    # R2: a top-level call before the first Step.
    ("step_before_call",
     lambda r: r.insert(2, {"Step": {"path_id": 0, "line": 1}}),
     "trace.json: record 2: Step outside any call: open a top-level Call before the first Step"),
    ("negative_line",
     lambda r: r[6]["Step"].update(line=-4),
     "trace.json: record 6: Step.line -4 is negative"),
    # Record shapes (trace-format §1.2).
    ("two_keys",
     lambda r: r.append({"Step": {"path_id": 0, "line": 1}, "Value": {}}),
     'trace.json: record 20: a record must be an object with exactly one key '
     '(or "DropLastStep")'),
    ("unknown_record",
     lambda r: r.append({"Stepp": {"path_id": 0, "line": 1}}),
     'trace.json: record 20: unknown record type "Stepp"'),
    ("missing_key",
     lambda r: r[15]["Return"].pop("return_value"),
     'trace.json: record 15: Return: missing key "return_value"'),
    ("call_without_args",
     lambda r: r[11]["Call"].pop("args"),
     'trace.json: record 11: Call: missing key "args"'),
    ("path_not_string",
     lambda r: r.append({"Path": 7}),
     "trace.json: record 20: Path: the payload must be a string, not a number"),
    ("line_not_integer",
     lambda r: r[6]["Step"].update(line="4"),
     "trace.json: record 6: Step.line: expected an integer, not a string"),
    ("type_kind_range",
     lambda r: r[4]["Type"].update(kind=34),
     "trace.json: record 4: Type.kind 34 is not a TypeKind number (0-33)"),
    ("type_specific_info",
     lambda r: r[4]["Type"].update(specific_info={"kind": "Enum"}),
     'trace.json: record 4: Type.specific_info.kind "Enum" is not None, Struct or Pointer'),
    ("event_kind_range",
     lambda r: r[19]["Event"].update(kind=14),
     "trace.json: record 19: Event.kind 14 is not an EventLogKind number (0-13)"),
    ("event_content",
     lambda r: r[19]["Event"].update(content=None),
     "trace.json: record 19: Event.content: expected a string, not null"),
    ("thread_id",
     lambda r: r.append({"ThreadSwitch": -1}),
     "trace.json: record 20: ThreadSwitch: the payload must be a thread id (unsigned integer)"),
    ("payload_not_object",
     lambda r: r.append({"Call": [0, []]}),
     "trace.json: record 20: Call: the payload must be an object, not an array"),
    ("event_metadata",
     lambda r: r[19]["Event"].pop("metadata"),
     'trace.json: record 19: Event: missing key "metadata"'),
    ("struct_type_field",
     lambda r: r.append({"Type": {"kind": 6, "lang_type": "P", "specific_info": {
         "kind": "Struct", "fields": [{"name": 1, "type_id": 1}]}}}),
     "trace.json: record 20: Type.field.name: expected a string, not a number"),
    ("pointer_type",
     lambda r: r.append({"Type": {"kind": 23, "lang_type": "P*", "specific_info": {
         "kind": "Pointer"}}}),
     'trace.json: record 20: Type.specific_info: missing key "dereference_type_id"'),
    ("asm",
     lambda r: r.append({"Asm": ["nop", 1]}),
     "trace.json: record 20: Asm: the payload must be a list of strings"),
    ("drop_variables",
     lambda r: r.append({"DropVariables": ["a"]}),
     "trace.json: record 20: DropVariables: the payload must be a list of variable ids"),
    ("drop_variable",
     lambda r: r.append({"DropVariable": "a"}),
     "trace.json: record 20: DropVariable: the payload must be a variable id"),
    ("cell_value",
     lambda r: r.append({"CellValue": {"place": 1, "value": {"kind": "Int", "type_id": 1}}}),
     'trace.json: record 20: CellValue.value: missing key "i"'),
    ("bind_variable",
     lambda r: r.append({"BindVariable": {"variable_id": 3, "place": 1}}),
     "trace.json: record 20: BindVariable.variable_id 3 refers to no earlier VariableName "
     "record (3 so far)"),
    ("assignment_pass_by",
     lambda r: r.append({"Assignment": {"to": 1, "pass_by": "Copy",
                                        "from": {"kind": "Simple", "data": 0}}}),
     'trace.json: record 20: Assignment.pass_by must be "Value" or "Reference"'),
    # Values (trace-format §2.1).
    ("variant_contents",
     lambda r: value_at(r, {"kind": "Variant", "discriminator": "Some", "type_id": 1,
                            "contents": {"kind": "String", "type_id": 1}}),
     'trace.json: record 18: Value.value.contents: missing key "text"'),
    ("reference_address_negative",
     lambda r: value_at(r, {"kind": "Reference", "dereferenced": INT, "mutable": False,
                            "address": -1, "type_id": 1}),
     "trace.json: record 18: Value.value.address: expected an unsigned 64-bit integer"),
    ("int_as_string",
     lambda r: value_at(r, {"kind": "Int", "i": "5", "type_id": 1}),
     "trace.json: record 18: Value.value: Int.i must be an integer, not a string"),
    ("int_out_of_range",
     lambda r: value_at(r, {"kind": "Int", "i": 2**63, "type_id": 1}),
     "trace.json: record 18: Value.value: Int.i 9223372036854775808 is out of the 64-bit "
     "range (use BigInt)"),
    ("float_as_number",
     lambda r: value_at(r, {"kind": "Float", "f": 2.5, "type_id": 1}),
     "trace.json: record 18: Value.value: Float.f must be a string for current CodeTracer "
     "(--floats number for 25.11 and older)"),
    ("float_text",
     lambda r: value_at(r, {"kind": "Float", "f": "2,5", "type_id": 1}),
     'trace.json: record 18: Value.value: Float.f "2,5" does not read as a float'),
    ("sequence_without_is_slice",
     lambda r: value_at(r, {"kind": "Sequence", "elements": [], "type_id": 1}),
     'trace.json: record 18: Value.value: missing key "is_slice"'),
    ("nested_value",
     lambda r: value_at(r, {"kind": "Tuple", "type_id": 1, "elements": [
         INT, {"kind": "Struct", "type_id": 1, "field_values": [{"kind": "Bool", "b": 1,
                                                                 "type_id": 1}]}]}),
     "trace.json: record 18: Value.value[1].field[0].b: expected a boolean, not a number"),
    ("reference_without_address",
     lambda r: value_at(r, {"kind": "Reference", "dereferenced": INT, "mutable": False,
                            "type_id": 1}),
     'trace.json: record 18: Value.value: missing key "address"'),
    ("bigint_base64",
     lambda r: value_at(r, {"kind": "BigInt", "b": "AQA", "negative": False, "type_id": 1}),
     "trace.json: record 18: Value.value: BigInt.b is not standard base64"),
    ("char_two_characters",
     lambda r: value_at(r, {"kind": "Char", "c": "ab", "type_id": 1}),
     "trace.json: record 18: Value.value: Char.c must be exactly one character"),
    ("unknown_value_kind",
     lambda r: value_at(r, {"kind": "Integer", "i": 5, "type_id": 1}),
     'trace.json: record 18: Value.value: unknown value kind "Integer"'),
    ("value_not_object",
     lambda r: value_at(r, 5),
     "trace.json: record 18: Value.value: a value must be an object, not a number"),
    ("return_value_type",
     lambda r: r[15]["Return"].update(return_value={"kind": "None", "type_id": 9}),
     "trace.json: record 15: Return.return_value.type_id 9 refers to no earlier Type record "
     "(2 so far)"),
    ("arg_variable",
     lambda r: r[11]["Call"]["args"][1].update(variable_id=4),
     "trace.json: record 11: Call.args[1].variable_id 4 refers to no earlier VariableName "
     "record (2 so far)"),
]

# (name, trace.json text replacing the whole file's records part, message).
TEXT_RULES = [
    ("not_array", lambda t: '{"Path": "x"}', "trace.json: the top level is not a JSON array"),
    ("empty_file", lambda t: "", "trace.json: empty"),
    ("cut_short", lambda t: t[:t.rindex("]")],
     "trace.json: ends before its closing ] (record 19 is the last complete one)"),
    ("cut_inside_record", lambda t: t[:t.rindex("Event") + 12],
     "trace.json: ends before its closing ] (record 18 is the last complete one)"),
    ("text_after_end", lambda t: t + "\n[]", "trace.json: text after the closing ]"),
    ("trailing_comma", lambda t: t[:t.rindex("]")] + ",]",
     "trace.json: a comma before the closing ]"),
    ("missing_comma", lambda t: t.replace("},\n{\"Step\"", "}\n{\"Step\"", 1),
     "trace.json: after record 4: expected , or ]"),
    ("syntax_error", lambda t: t.replace('{"VariableName": "a"}', '{"VariableName": a}'),
     "trace.json: record 8: not valid JSON"),
    ("number_grammar", lambda t: t.replace('"line": 4}', '"line": 04}', 1),
     'trace.json: record 6: the number "04" is not valid JSON'),
    ("cut_before_first_record", lambda t: t[:8],
     "trace.json: ends before its closing ] and its first record"),
    ("duplicate_key", lambda t: t.replace('"line": 4}', '"line": 4, "line": 5}', 1),
     'trace.json: record 6: the key "line" appears twice'),
    ("no_steps", lambda t: "[\n" + ",\n".join(json.dumps(r) for r in json.loads(t)[:5]) + "\n]",
     "trace.json: no Step records"),
]


class CheckRules(TempDirTest):
    """One broken trace per rule, with its message."""

    def setUp(self):
        super().setUp()
        self.program = os.path.join(self.tmp, "src", "add.py")
        os.makedirs(os.path.dirname(self.program))
        with open(self.program, "w") as f:
            f.write("def add(a, b):\n    return a + b\n\nx = add(2, 3)\nprint(x)\n")

    def make(self, name, records=None, text=None, meta=None, paths=None, copy=True):
        """A trace folder: the base trace, or records / text as trace.json."""
        folder = os.path.join(self.tmp, name)
        os.makedirs(folder)
        if records is None:
            records = base_records(self.program)
        if text is None:
            text = "[\n" + ",\n".join(json.dumps(r) for r in records) + "\n]\n"
        with open(os.path.join(folder, "trace.json"), "w") as f:
            f.write(text)
        if meta is None:
            meta = {"workdir": self.tmp, "program": self.program, "args": [],
                    "ctrec": {"state": "complete", "pid": 1, "exit_status": 0,
                              "counters": {"records": len(records)}}}
        with open(os.path.join(folder, "trace_metadata.json"), "w") as f:
            json.dump(meta, f)
        if paths is None:
            paths = [r["Path"] for r in records if isinstance(r, dict) and "Path" in r]
        with open(os.path.join(folder, "trace_paths.json"), "w") as f:
            json.dump(paths, f)
        os.makedirs(os.path.join(folder, "files"))
        if copy:
            dst = os.path.join(folder, "files", self.program.lstrip("/"))
            os.makedirs(os.path.dirname(dst))
            with open(self.program, "rb") as a, open(dst, "wb") as b:
                b.write(a.read())
        return folder

    def recording_meta(self):
        """The metadata of the program's trace while it is recorded."""
        return {"workdir": self.tmp, "program": self.program, "args": [],
                "ctrec": {"state": "recording"}}

    def check(self, folder, *opts):
        res = run([CTRECCTL, "check", *opts, folder])
        return res.returncode, res.stdout.decode(), res.stderr.decode()

    def assert_problem(self, folder, line, *opts):
        rc, out, err = self.check(folder, *opts)
        self.assertEqual(rc, 1, out + err)
        self.assertRegex(out.splitlines()[0], r"^FAIL " + folder + r": \d+ problem\(s\); ")
        self.assertIn("  " + line, out.splitlines())

    def test_base_trace_is_valid(self):
        folder = self.make("base")
        rc, out, err = self.check(folder)
        self.assertEqual((rc, err), (0, ""), out)
        self.assertEqual(out, f"ok   {folder}: 20 records, 5 steps, 2 calls, 1 returns, "
                              "max depth 2, 1 paths\n")

    def test_record_rules(self):
        for name, change, line in RECORD_RULES:
            with self.subTest(rule=name):
                records = base_records(self.program)
                change(records)
                self.assert_problem(self.make(name, records), line)

    def test_text_rules(self):
        base = "[\n" + ",\n".join(json.dumps(r) for r in base_records(self.program)) + "\n]"
        for name, change, line in TEXT_RULES:
            with self.subTest(rule=name):
                self.assert_problem(self.make(name, text=change(base)), line)

    def test_invalid_utf8(self):
        folder = self.make("utf8")
        path = os.path.join(folder, "trace.json")
        with open(path, "rb") as f:
            data = f.read()
        with open(path, "wb") as f:
            f.write(data.replace(b'"5\\n"', b'"5\xff"'))
        self.assert_problem(folder, "trace.json: record 19: not valid UTF-8")

    def test_deep_nesting(self):
        value = INT
        for _ in range(300):
            value = {"kind": "Tuple", "elements": [value], "type_id": 1}
        records = base_records(self.program)
        value_at(records, value)
        self.assert_problem(self.make("deep", records),
                            "trace.json: record 18: nested deeper than 250 levels")

    def test_record_too_long(self):
        records = base_records(self.program)
        value_at(records, {"kind": "Raw", "r": "x" * (65 << 20), "type_id": 1})
        self.assert_problem(self.make("long", records),
                            "trace.json: record 18: longer than 64 MiB, not checked")

    def test_floats_option(self):
        records = base_records(self.program)
        value_at(records, {"kind": "Float", "f": 2.5, "type_id": 1})
        folder = self.make("number", records)
        self.assertEqual(self.check(folder, "--floats", "number")[0], 0)
        self.assertEqual(self.check(folder, "--floats", "any")[0], 0)
        self.assert_problem(self.make("string", base_records(self.program) + [
            {"Value": {"variable_id": 2, "value": {"kind": "Float", "f": "inf", "type_id": 1}}}]),
            "trace.json: record 20: Value.value: Float.f is a string; --floats number wants "
            "a number", "--floats", "number")

    def test_cell_inside_compound_is_fine(self):
        records = base_records(self.program) + [
            {"CompoundValue": {"place": 7, "value": {"kind": "Sequence", "is_slice": False,
                                                    "type_id": 1,
                                                    "elements": [{"kind": "Cell", "place": 8}]}}},
            {"AssignCompoundItem": {"place": 7, "index": 0, "item_place": 9}},
            "DropLastStep", {"DropLastStep": None}]
        self.assertEqual(self.check(self.make("cells", records))[0], 0)

    def test_metadata(self):
        good = {"workdir": self.tmp, "program": self.program, "args": []}
        cases = [
            ("workdir", dict(good, workdir=3),
             'trace_metadata.json: "workdir" is missing or not a string'),
            ("program", {"workdir": self.tmp, "args": []},
             'trace_metadata.json: "program" is missing or not a string'),
            ("args", dict(good, args="a b"),
             'trace_metadata.json: "args" is missing or not an array'),
            ("args_strings", dict(good, args=["a", 2]),
             'trace_metadata.json: "args" must hold only strings'),
            ("ctrec_object", dict(good, ctrec="complete"),
             'trace_metadata.json: "ctrec" must be an object'),
            ("state", dict(good, ctrec={"state": "done"}),
             'trace_metadata.json: ctrec.state "done" is not recording, complete or aborted'),
            ("recording", dict(good, ctrec={"state": "recording"}),
             'trace_metadata.json: ctrec.state is still "recording" '
             "(--live checks a trace being recorded)"),
            ("pid", dict(good, ctrec={"state": "complete", "pid": "12"}),
             "trace_metadata.json: ctrec.pid must be an integer"),
            ("records", dict(good, ctrec={"state": "aborted: killed",
                                          "counters": {"records": 25}}),
             "trace_metadata.json: ctrec.counters.records is 25, trace.json holds only 20"),
        ]
        for name, meta, line in cases:
            with self.subTest(case=name):
                self.assert_problem(self.make(name, meta=meta), line)
        # Foreign traces have no ctrec object: that is fine.
        self.assertEqual(self.check(self.make("foreign", meta=good))[0], 0)
        self.assert_problem(self.make("top", meta=[good]),
                            "trace_metadata.json: the top level must be an object")
        self.assert_problem(self.make("counters", meta=dict(good, ctrec={
            "state": "complete", "counters": [1]})),
            "trace_metadata.json: ctrec.counters must be an object")
        self.assert_problem(self.make("interval", meta=dict(good, ctrec={
            "state": "complete", "interval": {"index": "1"}})),
            "trace_metadata.json: ctrec.interval must be an object with a numeric index")
        folder = self.make("missing")
        os.unlink(os.path.join(folder, "trace_metadata.json"))
        self.assert_problem(folder, "trace_metadata.json: missing")
        folder = self.make("broken")
        with open(os.path.join(folder, "trace_metadata.json"), "w") as f:
            f.write('{"workdir": "/"')
        self.assert_problem(folder, "trace_metadata.json: not valid JSON")

    def test_paths_file(self):  # R8
        records = base_records(self.program) + [{"Path": "/other.py"}]
        self.assert_problem(
            self.make("order", records, paths=["/other.py", self.program]),
            f'trace_paths.json: entry 0 is "/other.py", Path record 0 is "{self.program}"')
        self.assert_problem(self.make("short", records, paths=[self.program]),
                            "trace_paths.json: lists 1 paths, trace.json has 2 Path records")
        self.assert_problem(self.make("object", paths={"0": self.program}),
                            "trace_paths.json: the top level must be an array")
        folder = self.make("missing")
        os.unlink(os.path.join(folder, "trace_paths.json"))
        self.assert_problem(folder, "trace_paths.json: missing")

    def test_files(self):
        self.assert_problem(self.make("no_copy", copy=False),
                            f'files/: no copy of "{self.program}"')
        records = base_records(self.program) + [{"Path": "/../../etc/passwd"}]
        self.assert_problem(self.make("dotdot", records),
                            'files/: the copy of "/../../etc/passwd" would lie outside the '
                            "trace folder")
        # A copy that is a link out of the folder, and a link elsewhere in files/.
        folder = self.make("link", copy=False)
        dst = os.path.join(folder, "files", self.program.lstrip("/"))
        os.makedirs(os.path.dirname(dst))
        os.symlink(self.program, dst)
        os.symlink("/etc", os.path.join(folder, "files", "etc"))
        self.assert_problem(folder, f'files/: the copy of "{self.program}" leads outside files/')
        self.assert_problem(folder, "files/etc: a link that leads outside files/")
        # Pseudo paths have no copy.
        records = base_records(self.program) + [{"Path": "<internal:kernel>"}, {"Path": ""}]
        self.assertEqual(self.check(self.make("pseudo", records))[0], 0)
        folder = self.make("dir_copy", copy=False)
        os.makedirs(os.path.join(folder, "files", self.program.lstrip("/")))
        self.assert_problem(folder, f'files/: the copy of "{self.program}" is not a regular file')
        folder = self.make("files_file", copy=False)
        os.rmdir(os.path.join(folder, "files"))
        open(os.path.join(folder, "files"), "w").close()
        self.assert_problem(folder, "files/: not a directory")
        folder = self.make("nofiles")
        os.rename(os.path.join(folder, "files"), os.path.join(self.tmp, "elsewhere"))
        self.assert_problem(folder, "files/: missing, so no source has its copy")

    def test_live(self):
        """--live accepts what a trace being recorded looks like: state
        recording, a tail still being written, a paths file one flush behind,
        no Step yet, records a later flush wrote after the closing ] read; it
        still reports every other problem."""
        recording = self.recording_meta()
        base = "[\n" + ",\n".join(json.dumps(r) for r in base_records(self.program)) + "\n]"
        records = base_records(self.program) + [{"Path": "/other.py"}]
        folders = [self.make("live", meta=recording),
                   self.make("tail", text=base[:base.rindex("Event") + 12], meta=recording),
                   self.make("paths", records, paths=[self.program], meta=recording),
                   self.make("nostep", base_records(self.program)[:5], meta=recording)]
        os.makedirs(os.path.join(folders[2], "files"), exist_ok=True)
        with open(os.path.join(folders[2], "files", "other.py"), "w"):
            pass
        for folder in folders:
            with self.subTest(folder=os.path.basename(folder)):
                rc, out, err = self.check(folder, "--live")
                self.assertEqual(rc, 0, out + err)
                self.assertEqual(self.check(folder)[0], 1)
        records = base_records(self.program)
        records.append({"Return": {"return_value": INT}})
        records.append({"Return": {"return_value": INT}})
        self.assert_problem(self.make("broken", records, meta=recording),
                            "trace.json: record 21: Return without an open Call", "--live")
        # Text after the ] is a later flush's only once that flush wrote over
        # the ]; while the ] stands, it is the trace's own.
        self.assert_problem(self.make("after", text=base + "\n[]", meta=recording),
                            "trace.json: text after the closing ]", "--live")

    def test_live_trace_written_while_read(self):
        """A live trace.json grows as ctrecd flushes: records and a new
        closing ] written over the old one. A check reading the old ] and
        then the new records sees a whole trace, not text after its end."""
        recording = self.recording_meta()
        folder = self.make("growing", meta=recording)
        path = os.path.join(folder, "trace.json")
        with open(path, "rb") as f:
            text = f.read()
        step = b',\n{"Step": {"path_id": 0, "line": 5}}'
        stop = threading.Event()

        def flush_forever():
            fd = os.open(path, os.O_WRONLY)
            end = len(text) - len(b"\n]\n")
            while not stop.is_set():
                os.pwrite(fd, step * 20 + b"\n]\n", end)
                end += 20 * len(step)
                time.sleep(0.0005)
            os.close(fd)

        writer = threading.Thread(target=flush_forever)
        writer.start()
        try:
            results = [self.check(folder, "--live") for _ in range(40)]
        finally:
            stop.set()
            writer.join()
        self.assertEqual([r for r in results if r[0] != 0], [])

    def test_usage_and_io_errors(self):
        folder = self.make("base")
        res = run([CTRECCTL, "check"])
        self.assertEqual(res.returncode, 2)
        res = run([CTRECCTL, "check", "--floats", "double", folder])
        self.assertEqual(res.returncode, 2)
        missing = os.path.join(self.tmp, "none")
        res = run([CTRECCTL, "check", folder, missing])
        self.assertEqual(res.returncode, 2)
        self.assertIn(f"{missing}: No such file or directory", res.stderr.decode())
        # A broken folder and an unreadable one: the I/O error wins.
        broken = self.make("broken", meta={})
        self.assertEqual(run([CTRECCTL, "check", broken, missing]).returncode, 2)
        self.assertEqual(run([CTRECCTL, "check", folder, broken]).returncode, 1)
        self.assertEqual(run([CTRECCTL, "check", "-q", folder]).stdout, b"")
        help_text = run([CTRECCTL, "--help"]).stdout.decode()
        self.assertRegex(help_text, r"\n  check TRACE_DIR\.\.\. +verify trace folders")
        self.assertEqual(run([CTRECCTL, "check", "--help"]).returncode, 0)

    def test_stream_larger_than_memory_limit(self):
        """A trace.json several times larger than the address space the
        checker may use is checked record by record."""
        folder = self.make("big")
        path = os.path.join(folder, "trace.json")
        with open(path) as f:
            text = f.read()
        step = ',\n{"Step": {"path_id": 0, "line": 5}}'
        n = 3_000_000  # about 110 MB
        with open(path, "w") as f:
            f.write(text[:text.rindex("]")].rstrip())
            for _ in range(n // 10000):
                f.write(step * 10000)
            f.write(',\n{"Return": {"return_value": {"kind": "None", "type_id": 0}}}')
            f.write(',\n{"Return": {"return_value": {"kind": "None", "type_id": 0}}}\n]\n')
        with open(os.path.join(folder, "trace_metadata.json"), "w") as f:
            json.dump({"workdir": self.tmp, "program": self.program, "args": []}, f)
        limit = 48 << 20
        self.assertGreater(os.path.getsize(path), 2 * limit)

        def cap():
            resource.setrlimit(resource.RLIMIT_AS, (limit, limit))

        res = subprocess.run([CTRECCTL, "check", folder], stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, preexec_fn=cap, timeout=300)
        self.assertEqual(res.returncode, 1, res.stderr)
        self.assertEqual(res.stdout.decode().splitlines()[1],
                         f"  trace.json: record {20 + n + 1}: Return without an open Call")


class CheckRecordedTraces(TempDirTest):
    """Traces of real programs pass; a real trace with a record appended in
    ctrecd's own layout fails with that record's number."""

    def assert_valid(self, out_dir):
        folders = trace_folders(out_dir)
        self.assertTrue(folders)
        res = run([CTRECCTL, "check", *folders])
        self.assertEqual(res.returncode, 0, res.stdout.decode() + res.stderr.decode())
        self.assertEqual(len(res.stdout.decode().splitlines()), len(folders))
        return folders

    def break_trace(self, folder):
        if os.path.exists(os.path.join(folder, "trace.ct")):
            return self.break_ctfs_trace(folder)
        with open(os.path.join(folder, "trace.json")) as f:
            text = f.read()
        n = len(json.loads(text))
        extra = '{"Return":{"return_value":{"kind":"None","type_id":0}}}'
        with open(os.path.join(folder, "trace.json"), "w") as f:
            f.write(text[:text.rindex("]")].rstrip() + (",\n" + extra) * 3 + "\n]\n")
        res = run([CTRECCTL, "check", folder])
        self.assertEqual(res.returncode, 1)
        self.assertIn(f"  trace.json: record {n + 2}: Return without an open Call",
                      res.stdout.decode().splitlines())

    def break_ctfs_trace(self, folder):
        """A container holds no records to append to: the metadata claims
        three steps more than trace.ct holds."""
        path = os.path.join(folder, "trace_metadata.json")
        with open(path) as f:
            meta = json.load(f)
        n = meta["ctrec"]["counters"]["steps"]
        meta["ctrec"]["counters"]["steps"] = n + 3
        with open(path, "w") as f:
            json.dump(meta, f)
        res = run([CTRECCTL, "check", folder])
        self.assertEqual(res.returncode, 1)
        self.assertIn(f"  trace_metadata.json: ctrec.counters.steps is {n + 3}, "
                      f"trace.ct holds only {n}", res.stdout.decode().splitlines())

    def test_ruby(self):
        out_dir = os.path.join(self.tmp, "rb")
        for name in ("addition.rb", "exceptions.rb"):
            res = record(["ruby", os.path.join(RUBY_PROGRAMS, name)], out_dir)
            self.assertEqual(res.returncode, 0, res.stderr)
        folders = self.assert_valid(out_dir)
        self.break_trace(folders[0])

    def test_python(self):
        versions = dict(OTHER_PYTHONS, default=PYTHON)
        for version, py in sorted(versions.items()):
            with self.subTest(python=version):
                out_dir = os.path.join(self.tmp, "py-" + version)
                for name in ("array_sum.py", "arguments.py"):
                    res = record([py, os.path.join(PY_PROGRAMS, name)], out_dir)
                    self.assertEqual(res.returncode, 0, res.stderr)
                folders = self.assert_valid(out_dir)
                self.break_trace(folders[0])


# CTFS traces written from JSON ones: each test records a real program as
# JSON and writes the same records as trace.ct with the project's CTFS writer
# (tests/ctfs_mirror.c), next to the same sidecar files, so the two verdicts
# are on the same records.
CTFS_MIRROR = os.path.join(BUILD, "tests", "ctfs_mirror")

# Scalars, containers, nested calls, output, a big integer, more than one
# chunk of each stream (256 calls or values a chunk); no objects (nor
# Ruby hashes, whose pairs are objects): types.dat keeps no Struct field
# names, so objects render without them.
CTFS_PY = """def add(a, b):
    c = a + b
    return c

def twice(x):
    y = add(x, x)
    return y

xs = []
for i in range(150):
    xs.append(twice(i) + 0.5)
    if i < 4:
        print("line", i)
d = {"k": xs[:3], "t": (1, "x\\n", None, True)}
big = 2 ** 80
print(big)
"""

CTFS_RB = """def add(a, b)
  c = a + b
  c
end

xs = []
150.times do |i|
  xs << add(i, 2.5)
  puts "line #{i}" if i < 4
end
a = [xs[0, 3], "x", nil, true]
big = 2**80
puts big
"""


def mirror(test, folder, dest, *opts):
    """A CTFS copy of JSON trace folder: dest holds trace.ct and the same
    trace_metadata.json, trace_paths.json and files/."""
    os.makedirs(dest)
    shutil.copytree(os.path.join(folder, "files"), os.path.join(dest, "files"))
    for name in ("trace_metadata.json", "trace_paths.json"):
        shutil.copy(os.path.join(folder, name), dest)
    res = run([CTFS_MIRROR, *opts, folder, os.path.join(dest, "trace.ct")])
    test.assertEqual(res.returncode, 0, res.stderr.decode())
    return dest


def record_ctfs_pair(test, lang, python="python3"):
    """Records the CTFS test program; returns (JSON folder, CTFS folder)."""
    src = os.path.join(test.tmp, "prog." + ("rb" if lang == "ruby" else "py"))
    with open(src, "w") as f:
        f.write(CTFS_RB if lang == "ruby" else CTFS_PY)
    tag = lang + re.sub(r"\W", "_", python)
    out_dir = os.path.join(test.tmp, "json-" + tag)
    res = record(["ruby" if lang == "ruby" else python, src], out_dir,
                 extra=("--format", "json"))
    test.assertEqual(res.returncode, 0, res.stderr)
    (folder,) = trace_folders(out_dir)
    return folder, mirror(test, folder, os.path.join(test.tmp, "ctfs-" + tag))


def each_python(test, fn):
    """fn(python) on every Python the build has a shim for, as subtests."""
    for version, py in sorted(dict(OTHER_PYTHONS, default=PYTHON).items()):
        with test.subTest(python=version):
            fn(py)


def start_live_mirror(test, folder, opts=("--delay", "100", "--flush", "300")):
    """Starts writing folder's records slowly (ctfs_mirror opts) as
    live/trace.ct beside the metadata saying "recording"; returns (live
    folder, writer) once the file exists."""
    live = os.path.join(test.tmp, "live")
    os.makedirs(live)
    shutil.copytree(os.path.join(folder, "files"), os.path.join(live, "files"))
    with open(os.path.join(folder, "trace_metadata.json")) as f:
        meta = json.load(f)
    meta["ctrec"]["state"] = "recording"
    with open(os.path.join(live, "trace_metadata.json"), "w") as f:
        json.dump(meta, f)
    writer = subprocess.Popen([CTFS_MIRROR, *opts, folder, os.path.join(live, "trace.ct")],
                              stderr=subprocess.PIPE)
    while not os.path.exists(os.path.join(live, "trace.ct")) and writer.poll() is None:
        time.sleep(0.01)
    return live, writer


def check_line(folder):
    res = run([CTRECCTL, "check", folder])
    return res.returncode, res.stdout.decode(), res.stderr.decode()


def counts(line):
    """steps, calls and paths of a check verdict line."""
    m = re.search(r"(\d+) steps, (\d+) calls, \d+ returns, max depth (\d+), "
                  r"(\d+) paths", line)
    return m.groups()


class CheckCtfs(TempDirTest):
    """check reads trace.ct through the project's reader and gives the
    verdict it gives the JSON trace of the same records."""

    def assert_same_verdict(self, lang, python="python3"):
        folder, ctfs = record_ctfs_pair(self, lang, python)
        rc_j, out_j, _ = check_line(folder)
        rc_c, out_c, err_c = check_line(ctfs)
        self.assertEqual((rc_j, rc_c, err_c), (0, 0, ""), out_j + out_c)
        self.assertTrue(out_c.startswith(f"ok   {ctfs}: "), out_c)
        # Same steps, calls, depth and paths; CTFS closes the calls JSON
        # leaves open at the end, so returns may be more.
        self.assertEqual(counts(out_j), counts(out_c))
        return ctfs

    def test_ruby(self):
        self.assert_same_verdict("ruby")

    def test_python(self):
        each_python(self, lambda py: self.assert_same_verdict("python", py))

    def test_corrupt_containers(self):
        ctfs = self.assert_same_verdict("python")
        with open(os.path.join(ctfs, "trace.ct"), "rb") as f:
            data = f.read()

        def broken(name, content, message):
            folder = os.path.join(self.tmp, name)
            shutil.copytree(ctfs, folder)
            with open(os.path.join(folder, "trace.ct"), "wb") as f:
                f.write(content)
            rc, out, err = check_line(folder)
            self.assertEqual((rc, err), (1, ""), out)
            self.assertTrue(out.startswith(f"FAIL {folder}: "), out)
            self.assertIn("  " + message, out.splitlines())

        broken("short", data[:100],
               "trace.ct: not a CTFS container (bad header, or shorter than one block)")
        broken("magic", b"\0" + data[1:],
               "trace.ct: not a CTFS container (bad header, or shorter than one block)")
        # Cut inside the data: sizes in block 0 reach past the end.
        broken("truncated", data[:3 * 4096], "trace.ct: the paths table: damaged")
        # Flip the bytes of every zstd frame of steps.dat: no chunk decodes.
        bad = bytearray(data)
        at = bad.find(b"\x28\xb5\x2f\xfd")
        while at >= 0:
            bad[at + 6:at + 12] = b"\xff" * 6
            at = bad.find(b"\x28\xb5\x2f\xfd", at + 4)
        folder = os.path.join(self.tmp, "chunks")
        shutil.copytree(ctfs, folder)
        with open(os.path.join(folder, "trace.ct"), "wb") as f:
            f.write(bad)
        rc, out, err = check_line(folder)
        self.assertEqual((rc, err), (1, ""), out)
        self.assertRegex(out, r"\n  trace\.ct: \w+\.dat/\w+\.idx: damaged\n")

    def test_meta_dat_must_list_the_paths(self):
        ctfs = self.assert_same_verdict("python")
        with open(os.path.join(ctfs, "trace.ct"), "rb") as f:
            data = bytearray(f.read())
        # Rename the one path meta.dat lists (same length, so still valid).
        with open(os.path.join(ctfs, "trace_paths.json")) as f:
            (path,) = json.load(f)
        at = data.rfind(path.encode())
        self.assertGreater(at, 0)
        data[at + len(path) - 1:at + len(path)] = b"X"
        with open(os.path.join(ctfs, "trace.ct"), "wb") as f:
            f.write(data)
        rc, out, _ = check_line(ctfs)
        self.assertEqual(rc, 1, out)
        self.assertIn("trace.ct: meta.dat lists path 0 as", out)

    def test_live(self):
        """check --live passes mid-write; without --live a half-written
        trace fails on its metadata counters; finished, it passes."""
        folder, _ = record_ctfs_pair(self, "python")
        live, writer = start_live_mirror(self, folder)
        seen = set()
        try:
            while writer.poll() is None:
                res = run([CTRECCTL, "check", "--live", live])
                out = res.stdout.decode()
                self.assertEqual(res.returncode, 0, out + res.stderr.decode())
                seen.add(counts(out)[0])
                time.sleep(0.05)
        finally:
            writer.wait()
            err = writer.stderr.read()
            writer.stderr.close()
        self.assertEqual(writer.returncode, 0, err)
        rc, out, _ = check_line(live)
        self.assertEqual(rc, 1, out)  # still "recording"
        shutil.copy(os.path.join(folder, "trace_metadata.json"), live)
        rc, out, _ = check_line(live)
        self.assertEqual(rc, 0, out)
        total = counts(out)[0]
        self.assertTrue([n for n in seen if 0 < int(n) < int(total)], (seen, total))
