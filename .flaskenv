# Read by Flask's CLI only (`flask --app app ...`, python-dotenv), never by gunicorn: the commands get the
# development defaults `make run` gives the server. `.env` and the real environment override them (production).
FLASK_APP=app
APP_ENV=development
