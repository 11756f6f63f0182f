"""The task state machine: states, allowed transitions, and the hook that journals them."""
