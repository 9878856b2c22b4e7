import subprocess
import sys

import numpy as np

from sparta_hpc.commands.simulate import SimulationConfig, kendall_tau, simulate


def test_kendall_tau_matches_known_values():
    assert kendall_tau(np.array([1, 2, 3, 4]), np.array([10, 20, 30, 40])) == 1.0
    assert kendall_tau(np.array([1, 2, 3, 4]), np.array([4, 3, 2, 1])) == -1.0
    # 5 concordant, 1 discordant pair of 6 -> (5 - 1) / 6
    assert kendall_tau(np.array([1, 2, 3, 4]), np.array([1, 3, 2, 4])) == np.float64(4 / 6)


def test_simulation_is_deterministic_and_finds_the_ranking():
    cfg = SimulationConfig(members=6, iterations=4, duels=300, seed=7)
    one, two = simulate(cfg), simulate(cfg)
    assert one == two
    assert one[-1].kendall_tau > 0.6  # reputation tracks the latent quality
    assert one[-1].pair_accuracy > 0.6  # most chosen answers really are better
    assert simulate(SimulationConfig(members=6, iterations=4, duels=300, seed=8)) != one


def test_simulate_command_prints_every_variant():
    proc = subprocess.run([sys.executable, "-m", "sparta_hpc.cli", "simulate", "--members", "5",
                           "--iterations", "2", "--duels", "100", "--set", "matchmaking.alpha=0.3"],
                          capture_output=True, text=True, check=True)
    for name in ("reputation, alpha=0.3", "reputation, alpha=1", "uniform, alpha=0.3", "uniform, alpha=1"):
        assert name in proc.stdout
    rows = [line for line in proc.stdout.splitlines() if line.strip()[:1].isdigit()]
    assert len(rows) == 2


def test_simulate_refuses_a_bad_parameter():
    proc = subprocess.run([sys.executable, "-m", "sparta_hpc.cli", "simulate", "--set", "matchmaking.alpha=2"],
                          capture_output=True, text=True)
    assert proc.returncode == 2 and "matchmaking.alpha" in proc.stderr
