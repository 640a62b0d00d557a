"""Herald's provider simulator: a loopback server speaking the Twilio wire format, with fault injection."""

from herald.channels.simulator.app import create_app
from herald.channels.simulator.faults import MAGIC_NUMBERS, FaultKind
from herald.channels.simulator.server import SimulatorServer
from herald.channels.simulator.state import DEFAULT_ACCOUNT_SID, DEFAULT_AUTH_TOKEN, SimulatorConfig

__all__ = [
    "DEFAULT_ACCOUNT_SID",
    "DEFAULT_AUTH_TOKEN",
    "MAGIC_NUMBERS",
    "FaultKind",
    "SimulatorConfig",
    "SimulatorServer",
    "create_app",
]
