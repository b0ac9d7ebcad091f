#!/usr/bin/env python3
"""Reads the JUnit files that `ctest --output-junit` wrote for each test step and fails when a step
ran no test or a test skipped outside the allow-list (tests/skip-allowlist.txt).

    scripts/ctest_report.py tests/skip-allowlist.txt build/ci/junit.xml [more.xml ...]

Allow-list lines:  <test name pattern (fnmatch)> | <why it may skip> [| <ENV_VAR>]
With an ENV_VAR the skip is allowed only while that variable is set and non-empty (the setup step
sets it to the reason a program could not be provided), so a skip that hides coverage the machine
could give fails the run. Prints every skipped test with its reason at the end; exit 1 on a
violation.
"""
import fnmatch
import os
import sys
import xml.etree.ElementTree as ET


def read_allowlist(path):
    rules = []
    with open(path, encoding="utf-8") as f:
        for number, line in enumerate(f, 1):
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            parts = [p.strip() for p in line.split("|")]
            if len(parts) < 2 or not parts[0] or not parts[1]:
                sys.exit(f"{path}:{number}: expected '<pattern> | <why> [| <ENV_VAR>]'")
            rules.append((parts[0], parts[1], parts[2] if len(parts) > 2 else ""))
    return rules


def skip_message(case):
    skipped = case.find("skipped")
    text = (skipped.get("message") or "") if skipped is not None else ""
    out = case.find("system-out")
    if out is not None and out.text:
        for line in out.text.splitlines():
            if "SKIPPED:" in line:
                return line[line.index("SKIPPED:"):].strip()
    return text.strip()


def main():
    if len(sys.argv) < 3:
        sys.exit(__doc__)
    rules = read_allowlist(sys.argv[1])
    failed = False
    report = []
    for path in sys.argv[2:]:
        step = os.path.basename(os.path.dirname(path)) or path
        if not os.path.exists(path):
            print(f"ctest-report: {step}: no test report at {path} (the step did not run)")
            failed = True
            continue
        root = ET.parse(path).getroot()
        cases = list(root.iter("testcase"))
        ran = [c for c in cases if c.get("status") not in ("notrun", "disabled")
               and c.find("skipped") is None]
        skipped = [c for c in cases if c not in ran]
        print(f"ctest-report: {step}: {len(cases)} tests, {len(ran)} ran, {len(skipped)} skipped")
        if not ran:
            print(f"ctest-report: {step}: FAILED: the step ran no test")
            failed = True
        for case in skipped:
            name = case.get("name", "?")
            matching = [r for r in rules if fnmatch.fnmatchcase(name, r[0])]
            # Allowed when any matching rule's condition holds on this machine.
            rule = next((r for r in matching if not r[2] or os.environ.get(r[2])), None)
            why = skip_message(case)
            if not matching:
                verdict = "NOT ALLOWED (not in tests/skip-allowlist.txt)"
                failed = True
            elif rule is None:
                unset = ", ".join(r[2] for r in matching)
                verdict = (f"NOT ALLOWED ({unset} unset: what this test needs was provided, so "
                           f"it must run)")
                failed = True
            else:
                verdict = f"allowed: {rule[1]}" + (f" [{os.environ[rule[2]]}]" if rule[2] else "")
            report.append(f"  {step}: {name}: {why or '(no message)'} -- {verdict}")
    print(f"ctest-report: skipped tests: {len(report)}")
    for line in report:
        print(line)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
