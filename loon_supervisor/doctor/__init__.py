"""``loon doctor``: checks a running deployment end to end and prints a verdict table."""

from loon_supervisor.doctor.runner import run_doctor

__all__ = ["run_doctor"]
