"""The project's own device exceptions: every driver translates its failures into these."""


class DeviceError(Exception):
    """A device could not do what was asked."""

    def __init__(self, device: str, message: str) -> None:
        super().__init__(f"{device}: {message}")
        self.device = device
        self.message = message


class DeviceTimeout(DeviceError):
    """The device did not answer within the call's timeout."""


class DeviceNotConnected(DeviceError):
    """The device is not connected (never connected, or the link was lost)."""


class DeviceFault(DeviceError):
    """The device answered and reports a fault of its own."""


class InvalidCommand(DeviceError):
    """The command is outside what the device accepts (range, name, state)."""
