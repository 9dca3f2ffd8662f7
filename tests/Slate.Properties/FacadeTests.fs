module Slate.Properties.FacadeTests

open Expecto

let allTests = testList "Facade" []
