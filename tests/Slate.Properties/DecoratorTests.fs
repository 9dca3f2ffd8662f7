module Slate.Properties.DecoratorTests

open Expecto

let allTests = testList "Decorators" []
