"""A clock that only moves when someone sleeps: for the limiters and retries, whose waits are the behaviour."""


class FakeTime:
    def __init__(self, start_s: float = 0.0):
        self.now = start_s
        self.sleeps: list[float] = []

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds
