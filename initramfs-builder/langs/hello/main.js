// Image-build check: must print "hello, world".
const util = require("util");
console.log(util.format("%s, %s", "hello", "world"));
