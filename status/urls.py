# The public status page arrives with the status module; until then the host answers 404.
urlpatterns: list = []
