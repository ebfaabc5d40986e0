"""`python -m visionr1 ...` runs the same CLI as the `visionr1` script (useful under `accelerate launch -m`)."""

from visionr1.cli import app

if __name__ == "__main__":
    app()
