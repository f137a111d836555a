# Image-build check: must print "hello, world".
import json, re, collections
print(json.loads('"hello, world"'))
