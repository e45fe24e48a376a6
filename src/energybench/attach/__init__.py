"""``energybench attach``: energy from meters that log on their own, attached to results afterwards.

Readers for Intel Power Gadget ``PowerLog`` CSVs (:mod:`.powerlog`), ``nvidia-smi --query-gpu``
CSV logs (:mod:`.nvidia_smi`) and ``time, power`` CSVs of wall meters (:mod:`.wallcsv`); placing
them on the runs' clock (:mod:`.align`); re-attributing the runs (:mod:`.attach`); checking logs
alone (:mod:`.check`).
"""

from __future__ import annotations

from energybench.attach.attach import AttachResult, attach_logs
from energybench.attach.check import check_logs
from energybench.attach.formats import FORMATS, read_log
from energybench.attach.logs import LogData, LogFormatError, Trace

__all__ = ["FORMATS", "AttachResult", "LogData", "LogFormatError", "Trace", "attach_logs", "check_logs", "read_log"]
