"""A fake triton-ascend driver for the launch-table call: installed as upstream
Triton's active driver, it answers get_device_properties with the keys triton-ascend
3.2.0 returns (num_aicore, num_vectorcore; see docs/ascend-facts.md) for a 910B-class
chip, and records the device it was asked about."""

import types

AI_CORES, VECTOR_CORES = 24, 48


def install(calls: list) -> None:
    from triton.runtime import driver

    def get_device_properties(device):
        if not isinstance(device, int):
            raise TypeError(f"get_device_properties takes a device index, got {type(device).__name__}")
        calls.append(("triton.get_device_properties", {"device": device}))
        return {"num_aicore": AI_CORES, "num_vectorcore": VECTOR_CORES, "max_shared_mem": 192 * 1024}

    driver.set_active(types.SimpleNamespace(utils=types.SimpleNamespace(get_device_properties=get_device_properties)))


def uninstall() -> None:
    from triton.runtime import driver

    driver._active = None
