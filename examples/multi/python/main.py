import greet

print(greet.greet("world"))
