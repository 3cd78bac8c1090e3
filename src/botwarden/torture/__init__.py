"""The torture simulator: proof, at scale, that the six promises hold.

`simulation` runs one seed (a bot's simulated life under faults and crashes, checked
all along); `campaign` runs many, across processes, and reports; `real` does the same
with real processes killed by SIGKILL. See docs/reliability.md.
"""
