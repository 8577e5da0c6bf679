local lv = require "lvae"
describe("smoke", function()
  it("adds", function() assert.are.equal(3, (lv.ones({1}) * 3):item()) end)
end)
