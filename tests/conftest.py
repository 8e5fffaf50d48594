"""Shared fixtures: small exports written to a temporary directory."""

from __future__ import annotations

import datetime as dt
import os
import subprocess
import sys
from pathlib import Path

import pytest

AS_OF = dt.date(2026, 1, 1)

HEADER = ("Exhibit No.,Seizure Ref,Force,Area,Date Seized,Date Analysed,Drug,Seizure Type,"
          "Weight before (mg),Weight after,Rocks,Purity,Adulterants,Packaging,Price,"
          "Peak Area: Tropacocaine,p_norcocaine,Notes")
ROWS = [
    'E1,S1,Met,Hackney,03/02/2025,2025-02-20,Crack,TP,230,0.21g,1 rock,34%,"Lignocaine, benzocaine",Clear plastic bag knotted,£20,1.2E+05,<LOQ,hello',
    "E2,S1,Met,Hackney,03/02/2025,2025-02-20,crack cocaine,S&S,450 mg,0.44 g,3 rocks,0.28,lidocaine; phenacetin (5%),white cling film tied,£10.00,3400,120,",
    "E3,S2,Met,Camden,4/2/2025,10/02/2025,cocaine HCl,warrant,1.2 kg,1.19 kg,,trace,none detected,foil,,500,0,",
    "E3,S2,Met,Camden,4/2/2025,10/02/2025,cocaine HCl,warrant,1.2 kg,1.19 kg,,trace,none detected,foil,,500,0,",
    ",S3,Met,Camden,4/2/2025,10/02/2025,cocaine HCl,warrant,abc,1.19 kg,,120%,none detected,foil,,500,0,",
    "E5,S3,Met,Camden,4/2/2025,10/02/2024,speedball,warrant,2 g,2.5 g,,<1%,Caffeine / Procaine,weird wrap,,500,0,x",
    "E6,S4",
]


def write_export(path: Path, rows=ROWS, header=HEADER, encoding="utf-8", newline="\n") -> Path:
    path.write_bytes((newline.join([header, *rows]) + newline).encode(encoding))
    return path


@pytest.fixture
def export(tmp_path) -> Path:
    return write_export(tmp_path / "export.csv")


def run_cli(*args: str, cwd: Path | None = None, env_extra: dict | None = None):
    """Run the installed console command ``profile`` for real."""
    exe = Path(sys.executable).with_name("profile")
    env = {**os.environ, **(env_extra or {})}
    return subprocess.run([str(exe), *map(str, args)], capture_output=True, text=True, cwd=cwd,
                          env=env, timeout=600)
