from ragguard.cli import run

run()
