from django.core.asgi import get_asgi_application

from config.startup import load_settings

load_settings()  # one line on stderr and exit 1 on a configuration error
application = get_asgi_application()
