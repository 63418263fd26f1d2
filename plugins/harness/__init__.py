"""On-device runtime harness: build firmware around a generated C library and run it on QEMU, on the
host under sanitizers, or on a board over a serial port, measuring exact executed instructions."""
