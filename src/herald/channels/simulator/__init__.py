"""Herald's provider simulator: a loopback server speaking the Twilio wire format, with fault injection."""

from herald.channels.simulator.app import create_app
from herald.channels.simulator.faults import MAGIC_NUMBERS, FaultKind
from herald.channels.simulator.server import SimulatorServer
from herald.channels.simulator.state import DEFAULT_ACCOUNT_SID, MIN_AUTH_TOKEN_CHARS, SimulatorConfig

__all__ = [
    "DEFAULT_ACCOUNT_SID",
    "MAGIC_NUMBERS",
    "MIN_AUTH_TOKEN_CHARS",
    "FaultKind",
    "SimulatorConfig",
    "SimulatorServer",
    "create_app",
]
