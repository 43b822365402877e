"""mlfootprint.operator"""
