"""The actors of the worker: Task (state machine), Decoder, Motion, Coral and NAS.

Each actor is a plain class holding the logic (testable without threads) and a thin
`pykka.ThreadingActor` subclass around it.
"""
