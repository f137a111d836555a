exports.greet = (who) => `hello, ${who} (from greet.js)`;
