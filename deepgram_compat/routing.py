from django.urls import path

from deepgram_compat.consumers import DeepgramLiveConsumer

websocket_urlpatterns = [path("v1/listen", DeepgramLiveConsumer.as_asgi())]
