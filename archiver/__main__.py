from archiver.service.client import run

run()
