"""
Weights & Biases (wandb_log=True): the run's config and records in a wandb run, optional and never
fatal: a missing wandb, an init that fails (online, then offline too) or a log call that fails
warns once, and the records go on to metrics.jsonl alone.
"""

from fitgpt.errors import first_line
from fitgpt.formatting import warn


class WandbRun:
    """A wandb run that never stops training: a missing wandb, an init that fails (online, then
    offline too) or a log call that fails warns once, and the metrics go on to metrics.jsonl."""

    def __init__(self, project: str, name: str, config: dict):
        self.run = None
        try:
            import wandb  # optional: imported only when asked for
        except ImportError:
            warn("wandb_log=True but wandb is not installed (pip install wandb); metrics go to metrics.jsonl only")
            return
        try:
            self.run = wandb.init(project=project, name=name, config=config)
            return
        except Exception as e:  # no account, no network, a bad setting: wandb raises many kinds
            online = first_line(e, with_type=True)
        try:
            self.run = wandb.init(project=project, name=name, config=config, mode="offline")
            warn(f"wandb could not start online ({online}); logging offline instead (upload later: wandb sync)")
        except Exception as e:
            offline = first_line(e, with_type=True)
            warn(f"wandb could not start ({online}; offline: {offline}); metrics go to metrics.jsonl only")

    def log(self, record: dict) -> None:
        if self.run is None:
            return
        step = record["iter"]
        if "alarm" in record:  # a key per alarm, so that two raised at one iteration stay apart
            record = {f"alarm/{record['alarm']}": record["message"]}
        try:
            self.run.log(record, step=step)
        except Exception as e:
            warn(f"wandb stopped logging ({first_line(e, with_type=True)}); metrics go on to metrics.jsonl only")
            self.run = None

    def finish(self) -> None:
        run, self.run = self.run, None
        if run is not None:
            try:
                run.finish()
            except Exception as e:
                warn(f"wandb could not finish its run ({first_line(e, with_type=True)}); metrics.jsonl is complete")
