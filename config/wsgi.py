from django.core.wsgi import get_wsgi_application

from config.startup import load_settings

load_settings()  # one line on stderr and exit 1 on a configuration error
application = get_wsgi_application()
