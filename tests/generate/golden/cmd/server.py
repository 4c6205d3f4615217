print('static')
