"""Hydra instantiates launchers only from the `hydra_plugins` namespace: ladder's submit-only launchers, exposed here.
The logic lives in ladder/sweep/launchers.py."""

from hydra_plugins.hydra_submitit_launcher import submitit_launcher

from ladder.sweep.launchers import SubmitOnly


class SlurmLauncher(SubmitOnly, submitit_launcher.SlurmLauncher):
    pass


class LocalLauncher(SubmitOnly, submitit_launcher.LocalLauncher):
    pass
