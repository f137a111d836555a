package main

func greet(who string) string { return "hello, " + who + " (from greet.go)" }
