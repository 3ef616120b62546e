from ragguard.apps.cli import run

run()
