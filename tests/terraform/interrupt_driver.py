"""`duoctl.terraform.apply` in a process of its own, for test_aws_moto_interrupt.py: the test
signals this process's group as a terminal's Ctrl-C would.

Prints each line of Terraform's output as it comes. Exit codes: 0 the apply finished, 1 it
failed, 130 it was interrupted (Terraform stopped cleanly).

Usage: python interrupt_driver.py WORKDIR VARIABLES.json
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from duoctl import terraform
from duoctl.process import Interrupted


def main(argv: list[str]) -> int:
    workdir, variables_file = Path(argv[0]), Path(argv[1])
    variables = json.loads(variables_file.read_text(encoding="utf-8"))
    try:
        terraform.apply(workdir, variables, sink=lambda line: print(line, flush=True))
    except Interrupted as exc:
        print(f"driver: interrupted: {exc}", flush=True)
        return 130
    except terraform.TerraformError as exc:
        print(f"driver: apply failed: {exc}", flush=True)
        return 1
    print("driver: apply finished", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
