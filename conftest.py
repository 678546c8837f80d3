"""Notebooks run in FAST mode under pytest (small budgets); `RTU_LAB_FAST=0 pytest --nbmake notebooks` runs them
in full."""

import os

os.environ.setdefault("RTU_LAB_FAST", "1")
