"""E-licences (电子证照): a resident's licences from the library, presentations (亮证) and their verification."""
